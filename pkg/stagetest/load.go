package stagetest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// A Load is traffic for a server of the ROT13 line service: Conns
// connections, each sending lines of LineSize bytes (newline included)
// and keeping InFlight of them unanswered at a time (1 is ping-pong), for
// Duration, or until Lines lines have been answered in all. Every byte
// that comes back is checked.
type Load struct {
	Addr     string
	Conns    int
	LineSize int
	InFlight int
	Duration time.Duration
	Lines    int64
}

// A LoadResult is what a Load measured.
type LoadResult struct {
	Lines, Bytes   int64         // answered, and their bytes
	Errors         int           // connections that failed, or answered wrongly
	Elapsed        time.Duration // from the first line sent to the last answered
	P50, P99, P999 time.Duration // the time from a line's send to its answer
}

// LinesPerSec is the rate lines were answered at.
func (r LoadResult) LinesPerSec() float64 { return float64(r.Lines) / r.Elapsed.Seconds() }

// MBPerSec is the rate answers arrived at, in MB (10^6 bytes) a second.
func (r LoadResult) MBPerSec() float64 { return float64(r.Bytes) / 1e6 / r.Elapsed.Seconds() }

func (r LoadResult) String() string {
	return fmt.Sprintf("%d lines in %v: %.0f lines/s, %.1f MB/s; latency p50 %v, p99 %v, p999 %v; %d errors",
		r.Lines, r.Elapsed.Round(time.Millisecond), r.LinesPerSec(), r.MBPerSec(),
		r.P50, r.P99, r.P999, r.Errors)
}

// variants is how many different lines a connection cycles through, so
// that an answer sent to the wrong line, or a byte reordered, shows.
const variants = 61

// Dial opens the Load's connections, 100 at a time.
func (l Load) Dial() ([]net.Conn, error) {
	conns := make([]net.Conn, l.Conns)
	errs := make([]error, l.Conns)
	var wg sync.WaitGroup
	sem := make(chan bool, 100)
	for i := range conns {
		wg.Add(1)
		sem <- true
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			conns[i], errs[i] = net.DialTimeout("tcp", l.Addr, 30*time.Second)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			for _, c := range conns {
				if c != nil {
					c.Close()
				}
			}
			return nil, fmt.Errorf("connection %d of %d: %w", i, l.Conns, err)
		}
	}
	return conns, nil
}

// Run dials the Load's connections, runs it, and closes them.
func (l Load) Run() (LoadResult, error) {
	conns, err := l.Dial()
	if err != nil {
		return LoadResult{}, err
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	return l.RunOn(conns), nil
}

// RunOn runs the Load on connections already open, and leaves them open
// and quiet: once the time is up, or Lines are answered, no connection
// sends another line, and each reads the answers to the lines it has in
// flight, so that the next Load on them starts clean.
func (l Load) RunOn(conns []net.Conn) LoadResult {
	lines, answers := l.lines()
	ctx, cancel := context.WithCancel(context.Background())
	if l.Duration > 0 {
		ctx, cancel = context.WithTimeout(context.Background(), l.Duration)
	}
	defer cancel()
	var answered atomic.Int64
	var errors atomic.Int64
	samples := make([][]time.Duration, len(conns))
	var wg sync.WaitGroup
	start := time.Now()
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			samples[i], err = l.converse(ctx, cancel, c, i, lines, answers, &answered)
			if err != nil {
				errors.Add(1)
				cancel()
			}
		}()
	}
	wg.Wait()
	r := LoadResult{Lines: answered.Load(), Errors: int(errors.Load()), Elapsed: time.Since(start)}
	r.Bytes = r.Lines * int64(l.LineSize)
	all := slices.Concat(samples...)
	slices.Sort(all)
	if n := len(all); n > 0 {
		r.P50, r.P99, r.P999 = all[n*50/100], all[n*99/100], all[n*999/1000]
	}
	return r
}

// drainTime is how long a connection waits, once its Load ends, for the
// answers to the lines it still has in flight.
const drainTime = 30 * time.Second

// lines returns the lines a Load sends, and their answers.
func (l Load) lines() (lines, answers [][]byte) {
	size := max(l.LineSize, 2)
	for v := range variants {
		line := bytes.Repeat([]byte(fmt.Sprintf("line %02d: the quick brown fox jumps over the lazy dog. ", v)), size/40+1)[:size-1]
		line = append(line, '\n')
		lines, answers = append(lines, line), append(answers, rot13Of(line))
	}
	return lines, answers
}

// converse runs one connection: InFlight lines out, then a new line for
// each answer until ctx ends (the one that answers the Load's last line
// ends it), then the answers to the lines still in flight.
func (l Load) converse(ctx context.Context, done context.CancelFunc, c net.Conn, id int, lines, answers [][]byte, answered *atomic.Int64) ([]time.Duration, error) {
	inFlight := max(l.InFlight, 1)
	sent := make([]time.Time, 0, inFlight) // when each line in flight went out, oldest first
	var samples []time.Duration
	next := id // which variant goes next; connections start apart
	send := func(n int) error {
		var batch []byte
		for range n {
			batch = append(batch, lines[next%variants]...)
			sent = append(sent, time.Now())
			next++
		}
		_, err := c.Write(batch)
		return err
	}
	if err := send(inFlight); err != nil {
		return samples, err
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now().Add(drainTime)) })
	defer stop()
	defer c.SetDeadline(time.Time{})
	got := make([]byte, len(lines[0]))
	for seq := next - inFlight; len(sent) > 0; seq++ {
		if _, err := io.ReadFull(c, got); err != nil {
			return samples, fmt.Errorf("connection %d: %w", id, err)
		}
		if !bytes.Equal(got, answers[seq%variants]) {
			return samples, fmt.Errorf("connection %d: a wrong answer: %q", id, got)
		}
		samples = append(samples, time.Since(sent[0]))
		sent = sent[1:]
		if n := answered.Add(1); l.Lines > 0 && n >= l.Lines {
			done()
		}
		if ctx.Err() != nil {
			continue // draining
		}
		if err := send(1); err != nil {
			return samples, err
		}
	}
	return samples, nil
}

// rot13Of returns the ROT13 of p, written out here so that the harness
// does not depend on the code it checks.
func rot13Of(p []byte) []byte {
	out := make([]byte, len(p))
	for i, b := range p {
		switch {
		case b >= 'a' && b <= 'z':
			out[i] = 'a' + (b-'a'+13)%26
		case b >= 'A' && b <= 'Z':
			out[i] = 'A' + (b-'A'+13)%26
		default:
			out[i] = b
		}
	}
	return out
}
