//go:build darwin || dragonfly || freebsd || netbsd || openbsd

package event

// methods is the BSDs' (and Darwin's) preference list: kqueue first.
var methods = []method{
	{"kqueue", newKqueue},
	{"poll", newPoll},
	{"select", newSelect},
}
