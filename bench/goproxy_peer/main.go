// Command goproxy-bench serves a directory in GOPROXY layout through goproxy/goproxy (offline:
// no fetcher reaches the network; the cache directory holds every artifact).
package main

import (
	"flag"
	"log"
	"net/http"

	"github.com/goproxy/goproxy"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:8080", "address")
	dir := flag.String("cache", "", "cache directory")
	flag.Parse()
	g := &goproxy.Goproxy{
		Cacher:  goproxy.DirCacher(*dir),
		Fetcher: &goproxy.GoFetcher{Env: []string{"GOPROXY=off", "GOSUMDB=off"}},
	}
	log.Fatal(http.ListenAndServe(*addr, g))
}
