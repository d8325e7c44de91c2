// Command gocheck answers path.Match questions with the real Go standard library, so the Python
// port in modvault.module.globs can be cross-checked against it.
//
// Input on stdin: a JSON array of [pattern, name] pairs.
// Output on stdout: a JSON array of {"matched": bool, "bad": bool}, one per pair, where bad means
// path.Match returned path.ErrBadPattern.
package main

import (
	"encoding/json"
	"errors"
	"os"
	"path"
)

type answer struct {
	Matched bool `json:"matched"`
	Bad     bool `json:"bad"`
}

func main() {
	var pairs [][2]string
	if err := json.NewDecoder(os.Stdin).Decode(&pairs); err != nil {
		os.Stderr.WriteString("gocheck: " + err.Error() + "\n")
		os.Exit(2)
	}
	out := make([]answer, len(pairs))
	for i, p := range pairs {
		m, err := path.Match(p[0], p[1])
		out[i] = answer{Matched: m, Bad: errors.Is(err, path.ErrBadPattern)}
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		os.Stderr.WriteString("gocheck: " + err.Error() + "\n")
		os.Exit(2)
	}
}
