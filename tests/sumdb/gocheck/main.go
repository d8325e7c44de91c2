// Command gocheck is an independent, standard-library-only reading of the signed note format
// (golang.org/x/mod/sumdb/note), used by tests/sumdb/test_note.py to cross-check modvault's
// Python implementation against Go's crypto/ed25519.
//
//	gocheck verify <vkey>  < signed note   prints the note text, exit 1 unless a signature by vkey verifies
//	gocheck sign <skey>    < text          prints the signed note
//	gocheck vkey <skey>                    prints the verifier key for skey
package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

func keyHash(name string, key []byte) uint32 {
	h := sha256.New()
	h.Write([]byte(name + "\n"))
	h.Write(key)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "gocheck: "+format+"\n", args...)
	os.Exit(1)
}

// parseKey splits "name+hash+base64" and checks the hash and the algorithm byte.
func parseKey(s string) (name string, hash uint32, key []byte) {
	f := strings.SplitN(s, "+", 3)
	if len(f) != 3 || len(f[1]) != 8 {
		fail("malformed key")
	}
	h, err := strconv.ParseUint(f[1], 16, 32)
	if err != nil {
		fail("malformed key hash")
	}
	raw, err := base64.StdEncoding.DecodeString(f[2])
	if err != nil || len(raw) != 33 || raw[0] != 1 {
		fail("malformed key data")
	}
	return f[0], uint32(h), raw[1:]
}

func verify(vkey string, msg []byte) {
	name, hash, pub := parseKey(vkey)
	if keyHash(name, append([]byte{1}, pub...)) != hash {
		fail("key hash mismatch")
	}
	split := bytes.LastIndex(msg, []byte("\n\n"))
	if split < 0 {
		fail("no signature block")
	}
	text, sigs := msg[:split+1], msg[split+2:]
	for _, line := range strings.Split(strings.TrimSuffix(string(sigs), "\n"), "\n") {
		rest, ok := strings.CutPrefix(line, "\u2014 ")
		if !ok {
			fail("bad signature line %q", line)
		}
		sigName, b64, _ := strings.Cut(rest, " ")
		sig, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(sig) < 5 {
			fail("bad signature encoding")
		}
		if sigName == name && binary.BigEndian.Uint32(sig) == hash {
			if !ed25519.Verify(ed25519.PublicKey(pub), text, sig[4:]) {
				fail("invalid signature")
			}
			os.Stdout.Write(text)
			return
		}
	}
	fail("no signature by %s", name)
}

func signer(skey string) (name string, hash uint32, priv ed25519.PrivateKey) {
	rest, ok := strings.CutPrefix(skey, "PRIVATE+KEY+")
	if !ok {
		fail("malformed signer key")
	}
	name, hash, seed := parseKey(rest)
	priv = ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	if keyHash(name, append([]byte{1}, pub...)) != hash {
		fail("signer key hash mismatch")
	}
	return name, hash, priv
}

func main() {
	if len(os.Args) != 3 {
		fail("usage: gocheck verify|sign|vkey KEY")
	}
	switch os.Args[1] {
	case "verify":
		msg, err := io.ReadAll(os.Stdin)
		if err != nil {
			fail("%v", err)
		}
		verify(os.Args[2], msg)
	case "sign":
		text, err := io.ReadAll(os.Stdin)
		if err != nil || !bytes.HasSuffix(text, []byte("\n")) {
			fail("text must end in newline")
		}
		name, hash, priv := signer(os.Args[2])
		sig := append(binary.BigEndian.AppendUint32(nil, hash), ed25519.Sign(priv, text)...)
		fmt.Printf("%s\n\u2014 %s %s\n", text, name, base64.StdEncoding.EncodeToString(sig))
	case "vkey":
		name, hash, priv := signer(os.Args[2])
		pub := append([]byte{1}, priv.Public().(ed25519.PublicKey)...)
		fmt.Printf("%s+%08x+%s\n", name, hash, base64.StdEncoding.EncodeToString(pub))
	default:
		fail("unknown mode %q", os.Args[1])
	}
}
