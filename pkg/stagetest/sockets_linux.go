package stagetest

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// A tcpSocket is one line of /proc/net/tcp or /proc/net/tcp6: a TCP
// socket of this network namespace, as the kernel sees it.
type tcpSocket struct {
	local, remote netip.AddrPort
	state         int    // 0x0A: listening; 0x01: established
	txQueue       int    // established: sent and not acknowledged, or not sent yet (ss's Send-Q)
	rxQueue       int    // established: received and not read; listening: connections not accepted yet (ss's Recv-Q)
	inode         string // the socket's inode, as /proc/PID/fd/N links to it: socket:[inode]
}

const (
	tcpEstablished = 0x01
	tcpListen      = 0x0A
)

// tcpSockets returns every TCP socket of the network namespace, IPv4 and
// IPv6.
func tcpSockets() ([]tcpSocket, error) {
	var all []tcpSocket
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(table)
		if os.IsNotExist(err) {
			continue // no IPv6 in this kernel
		}
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // the header
		for sc.Scan() {
			// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 {
				continue
			}
			local, err1 := procAddr(fields[1])
			remote, err2 := procAddr(fields[2])
			state, err3 := strconv.ParseUint(fields[3], 16, 8)
			tx, rx, _ := strings.Cut(fields[4], ":")
			txQueue, err4 := strconv.ParseUint(tx, 16, 32)
			rxQueue, err5 := strconv.ParseUint(rx, 16, 32)
			if err1 != nil || err2 != nil || err3 != nil || err4 != nil || err5 != nil {
				f.Close()
				return nil, fmt.Errorf("%s: cannot read %q", table, sc.Text())
			}
			all = append(all, tcpSocket{local, remote, int(state), int(txQueue), int(rxQueue), fields[9]})
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	return all, nil
}

// procAddr parses an address of /proc/net/tcp: the IP as 32-bit words in
// the machine's byte order, in hex, then ':' and the port in hex.
func procAddr(s string) (netip.AddrPort, error) {
	ip, port, ok := strings.Cut(s, ":")
	p, err := strconv.ParseUint(port, 16, 16)
	if !ok || err != nil {
		return netip.AddrPort{}, fmt.Errorf("address %q", s)
	}
	raw, err := hex.DecodeString(ip)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("address %q", s)
	}
	for i := 0; i < len(raw); i += 4 { // each word back to network order
		binary.BigEndian.PutUint32(raw[i:], binary.NativeEndian.Uint32(raw[i:]))
	}
	addr, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(addr.Unmap(), uint16(p)), nil
}

// AcceptQueue returns how many connections wait in the server's listening
// socket for the server to accept them: their handshakes are done, in the
// kernel, and the server has not taken them (ss -lt's Recv-Q).
func (s *Server) AcceptQueue() (int, error) {
	port, err := strconv.ParseUint(s.Port(), 10, 16)
	if err != nil {
		return 0, err
	}
	socks, err := tcpSockets()
	if err != nil {
		return 0, err
	}
	n, found := 0, false
	for _, sk := range socks {
		if sk.state == tcpListen && sk.local.Port() == uint16(port) {
			n += sk.rxQueue
			found = true
		}
	}
	if !found {
		return 0, fmt.Errorf("no socket listens on port %d", port)
	}
	return n, nil
}

// ConnQueues returns what waits in the kernel on the connection conn, a
// client of the server's, in both directions. When the client stops
// reading, the server's answers fill the client's receive buffer, then the
// server's send buffer: a server whose ServerUnsent stays above zero has
// found its socket full.
func ConnQueues(conn net.Conn) (Queues, error) {
	local, err1 := netip.ParseAddrPort(conn.LocalAddr().String())
	remote, err2 := netip.ParseAddrPort(conn.RemoteAddr().String())
	if err1 != nil || err2 != nil {
		return Queues{}, fmt.Errorf("the addresses of %v", conn.LocalAddr())
	}
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	socks, err := tcpSockets()
	if err != nil {
		return Queues{}, err
	}
	var q Queues
	client, server := false, false
	for _, sk := range socks {
		if sk.state != tcpEstablished {
			continue
		}
		switch {
		case sk.local == local && sk.remote == remote:
			q.ClientUnread, client = sk.rxQueue, true
		case sk.local == remote && sk.remote == local:
			q.ServerUnsent, q.ServerUnread, server = sk.txQueue, sk.rxQueue, true
		}
	}
	if !client || !server {
		return q, fmt.Errorf("the connection %v to %v is not established at both ends", local, remote)
	}
	return q, nil
}

// listeningInodes adds to inodes the inode of every socket that listens on
// port.
func listeningInodes(port uint16, inodes map[string]bool) error {
	socks, err := tcpSockets()
	if err != nil {
		return err
	}
	for _, sk := range socks {
		if sk.state == tcpListen && sk.local.Port() == port {
			inodes[sk.inode] = true
		}
	}
	return nil
}
