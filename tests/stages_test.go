package tests

import "os"

// A stage is one program of the ladder, as the suite knows it.
type stage struct {
	dir    string   // the directory of its main package; or, with c, the C file
	c      bool     // a C program, built against the system's libevent
	name   string   // its row in the matrix, when not dir: "04-reactor-server (poll)"
	env    []string // its environment: "EVENT_NOEPOLL=1"
	client bool     // 01: the client's rules apply, not the servers'

	// reactor marks a server on pkg/event, whose backend the
	// environment picks (04, 05).
	reactor bool

	// clients is how many concurrent clients many-clients connects; 2000
	// unless set.
	clients int

	// completion marks a server on io_uring (07, and 05 with
	// EVENT_IOURING): where the kernel refuses io_uring, its rows are
	// skipped, with the reason, but for the rule that it says so.
	completion bool

	// fdSetSize marks a server built on select(2): it serves descriptors
	// below FD_SETSIZE and closes the others at once (03).
	fdSetSize bool

	// designed maps a property the stage breaks by design to the way it
	// breaks it (the kind its check reports), for the book's Bad Examples.
	// CONTRACT.md lists which rules each may break.
	designed map[string]string
}

// stages is every stage of the ladder, in order.
var stages = []stage{
	{dir: "01-blocking-client", client: true},
	{dir: "02-forking-server/blocking-loop", designed: map[string]string{
		"concurrency":   "stall",
		"many-clients":  "stall",
		"back-pressure": "stall",
		"chaos":         "stall",
	}},
	{dir: "02-forking-server"},
	{dir: "03-select-server/busy-poll", designed: map[string]string{
		"idle-cpu": "burns-cpu",
		"emfile":   "burns-cpu",
	}},
	{dir: "03-select-server", fdSetSize: true},
	{dir: "04-reactor-server", name: "04-reactor-server (epoll)", reactor: true, clients: 10000},
	{dir: "04-reactor-server", name: "04-reactor-server (poll)", env: []string{"EVENT_NOEPOLL=1"}, reactor: true, clients: 10000},
	{dir: "04-reactor-server", name: "04-reactor-server (select)", env: []string{"EVENT_NOEPOLL=1", "EVENT_NOPOLL=1"}, reactor: true, fdSetSize: true},
	{dir: "05-bufferevent-server", name: "05-bufferevent-server (epoll)", reactor: true, clients: 10000},
	{dir: "05-bufferevent-server", name: "05-bufferevent-server (poll)", env: []string{"EVENT_NOEPOLL=1"}, reactor: true},
	{dir: "05-bufferevent-server", name: "05-bufferevent-server (select)", env: []string{"EVENT_NOEPOLL=1", "EVENT_NOPOLL=1"}, reactor: true, fdSetSize: true},
	{dir: "05-bufferevent-server", name: "05-bufferevent-server (io_uring)", env: []string{"EVENT_IOURING=1"}, reactor: true, completion: true, clients: 10000},
	{dir: "06-goroutine-server", clients: 10000},
	{dir: "07-completion-server", completion: true, clients: 10000},
}

// libeventStage is the benchmarks' reference, the book's last server on the
// real libevent, made to follow the contract. It joins the table when
// TINYASYNC_LIBEVENT is set (.ci/run and make bench set it, and install
// libevent), so that make test on a machine with only Go needs no C.
var libeventStage = stage{dir: "tests/libevent/rot13.c", name: "libevent (C)", c: true, clients: 10000}

func init() {
	if os.Getenv("TINYASYNC_LIBEVENT") != "" {
		stages = append(stages, libeventStage)
	}
}

// id is the stage's row in the matrix.
func (st stage) id() string {
	if st.name != "" {
		return st.name
	}
	return st.dir
}

// properties returns the properties that apply to the stage.
func (st stage) properties() []property {
	if st.client {
		return clientProperties
	}
	var props []property
	for _, p := range serverProperties {
		if p.only == nil || p.only(st) {
			props = append(props, p)
		}
	}
	return props
}

// stalls reports whether the stage is designed to let a silent client
// stall every other (the blocking loop). Checks of other rules then ask
// only what such a stage can do: they connect clients, but do not wait for
// every one of them to be served.
func (st stage) stalls() bool {
	return st.designed["concurrency"] == "stall"
}

// spins reports whether the stage is designed never to wait for IO, asking
// its sockets over and over instead (the busy-poller).
func (st stage) spins() bool {
	return st.designed["idle-cpu"] == "burns-cpu"
}
