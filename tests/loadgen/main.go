// Command loadgen runs the harness's load generator (pkg/stagetest.Load)
// against a server by hand, and prints what it measured:
//
//	go run ./03-select-server &
//	go run ./tests/loadgen -conns 100 -inflight 16 -duration 5s
//
// Every byte that comes back is checked against the ROT13 of what was sent.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"tinyasync/pkg/evutil"
	"tinyasync/pkg/stagetest"
)

func main() {
	flag.CommandLine.Init("loadgen", flag.ExitOnError)
	addr := flag.String("addr", evutil.DefaultListen, "the server's `host:port`")
	conns := flag.Int("conns", 10, "how many connections")
	size := flag.Int("size", 64, "the size of a line, newline included, in `bytes`")
	inflight := flag.Int("inflight", 1, "lines in flight per connection (1 is ping-pong)")
	duration := flag.Duration("duration", 5*time.Second, "how long to run")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("loadgen: ")
	if *conns < 1 || *size < 2 || *inflight < 1 {
		log.Print("-conns and -inflight must be at least 1, -size at least 2")
		os.Exit(2)
	}
	r, err := stagetest.Load{Addr: *addr, Conns: *conns, LineSize: *size, InFlight: *inflight, Duration: *duration}.Run()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(r)
	if r.Errors > 0 {
		os.Exit(1)
	}
}
