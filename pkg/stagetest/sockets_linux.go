package stagetest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
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
//
// It asks the kernel for the two sockets of the connection by their
// addresses (sock_diag(7)), which costs the same however many sockets the
// machine has; /proc/net/tcp lists them all, thousands after a test of
// many clients, and a check that polls it slows what it measures. Where
// sock_diag is refused, it reads /proc/net/tcp.
func ConnQueues(conn net.Conn) (Queues, error) {
	local, err1 := netip.ParseAddrPort(conn.LocalAddr().String())
	remote, err2 := netip.ParseAddrPort(conn.RemoteAddr().String())
	if err1 != nil || err2 != nil {
		return Queues{}, fmt.Errorf("the addresses of %v", conn.LocalAddr())
	}
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	var q Queues
	client, cerr := diagSocket(local, remote)
	server, serr := diagSocket(remote, local)
	switch {
	case cerr == nil && serr == nil:
		if client.state != tcpEstablished || server.state != tcpEstablished {
			return q, fmt.Errorf("the connection %v to %v is not established at both ends", local, remote)
		}
		q.ClientUnread = client.rxQueue
		q.ServerUnsent, q.ServerUnread = server.txQueue, server.rxQueue
		return q, nil
	case errors.Is(cerr, unix.ENOENT) || errors.Is(serr, unix.ENOENT):
		return q, fmt.Errorf("the connection %v to %v is not established at both ends", local, remote)
	}
	socks, err := tcpSockets()
	if err != nil {
		return Queues{}, err
	}
	found, foundServer := false, false
	for _, sk := range socks {
		if sk.state != tcpEstablished {
			continue
		}
		switch {
		case sk.local == local && sk.remote == remote:
			q.ClientUnread, found = sk.rxQueue, true
		case sk.local == remote && sk.remote == local:
			q.ServerUnsent, q.ServerUnread, foundServer = sk.txQueue, sk.rxQueue, true
		}
	}
	if !found || !foundServer {
		return q, fmt.Errorf("the connection %v to %v is not established at both ends", local, remote)
	}
	return q, nil
}

// inetDiagSockID, inetDiagReqV2 and inetDiagMsg are the kernel's struct
// inet_diag_sockid, inet_diag_req_v2 and inet_diag_msg
// (include/uapi/linux/inet_diag.h); x/sys has no copy of them.
type inetDiagSockID struct {
	Sport, Dport [2]byte // big-endian
	Src, Dst     [16]byte
	If           uint32
	Cookie       [2]uint32
}

type inetDiagReqV2 struct {
	Family, Protocol, Ext, Pad uint8
	States                     uint32
	ID                         inetDiagSockID
}

type inetDiagMsg struct {
	Family, State, Timer, Retrans uint8
	ID                            inetDiagSockID
	Expires, Rqueue, Wqueue       uint32
	UID, Inode                    uint32
}

// diagSocket asks the kernel (sock_diag, NETLINK_SOCK_DIAG) for the one TCP
// socket whose own address is local and whose peer is remote: its state
// and queues, as /proc/net/tcp would show them. ENOENT: no such socket.
func diagSocket(local, remote netip.AddrPort) (tcpSocket, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return tcpSocket{}, err
	}
	defer unix.Close(fd)
	req := inetDiagReqV2{Family: unix.AF_INET, Protocol: unix.IPPROTO_TCP, States: ^uint32(0)}
	if local.Addr().Is6() {
		req.Family = unix.AF_INET6
	}
	binary.BigEndian.PutUint16(req.ID.Sport[:], local.Port())
	binary.BigEndian.PutUint16(req.ID.Dport[:], remote.Port())
	la, ra := local.Addr().AsSlice(), remote.Addr().AsSlice()
	copy(req.ID.Src[:], la)
	copy(req.ID.Dst[:], ra)
	req.ID.Cookie = [2]uint32{^uint32(0), ^uint32(0)} // INET_DIAG_NOCOOKIE: find it by its addresses

	var msg bytes.Buffer
	hdr := unix.NlMsghdr{
		Len:   uint32(unix.SizeofNlMsghdr + binary.Size(req)),
		Type:  unix.SOCK_DIAG_BY_FAMILY,
		Flags: unix.NLM_F_REQUEST, // one socket, not a dump of them all
		Seq:   1,
	}
	binary.Write(&msg, binary.NativeEndian, hdr)
	binary.Write(&msg, binary.NativeEndian, req)
	if err := unix.Sendto(fd, msg.Bytes(), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return tcpSocket{}, err
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return tcpSocket{}, err
	}
	msgs, err := syscall.ParseNetlinkMessage(buf[:n])
	if err != nil || len(msgs) == 0 {
		return tcpSocket{}, fmt.Errorf("sock_diag: %d bytes that are no netlink message", n)
	}
	m := msgs[0]
	switch m.Header.Type {
	case unix.NLMSG_ERROR:
		if len(m.Data) >= 4 {
			if errno := int32(binary.NativeEndian.Uint32(m.Data)); errno < 0 {
				return tcpSocket{}, fmt.Errorf("sock_diag: %w", unix.Errno(-errno))
			}
		}
		return tcpSocket{}, fmt.Errorf("sock_diag: an error without its number")
	case unix.SOCK_DIAG_BY_FAMILY:
		var dm inetDiagMsg
		if err := binary.Read(bytes.NewReader(m.Data), binary.NativeEndian, &dm); err != nil {
			return tcpSocket{}, fmt.Errorf("sock_diag: %w", err)
		}
		return tcpSocket{local: local, remote: remote, state: int(dm.State),
			txQueue: int(dm.Wqueue), rxQueue: int(dm.Rqueue), inode: strconv.FormatUint(uint64(dm.Inode), 10)}, nil
	}
	return tcpSocket{}, fmt.Errorf("sock_diag: a message of type %d", m.Header.Type)
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
