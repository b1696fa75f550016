package main

import (
	"testing"

	"tinyasync/pkg/stagetest"
)

func TestMain(m *testing.M) { stagetest.Main(m) }

// BenchmarkLines measures lines answered per second and, where strace is
// installed, the server's system calls per line (in all its threads), on
// each backend, for one client and for 100 with a line each in flight:
//
//	go test -run '^$' -bench Lines ./04-reactor-server
func BenchmarkLines(b *testing.B) {
	stagetest.BenchReactor(b, "04-reactor-server")
}
