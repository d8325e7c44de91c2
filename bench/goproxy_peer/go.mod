module example.com/goproxypeer

go 1.25.0

require (
	github.com/aofei/backoff v1.2.0
	github.com/goproxy/goproxy v0.0.0
	golang.org/x/mod v0.34.0
)
