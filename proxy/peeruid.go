package proxy

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// PeerUID returns the uid owning the client's end of a TCP connection the
// proxy accepted (local is the proxy's address, remote the client's), from
// the kernel's socket tables /proc/net/tcp and /proc/net/tcp6. It reports
// ok=false where there are none (not Linux) or the client's socket is not
// in them (another network namespace: another machine or container).
//
// The uid is the one the socket was created with, as the sidecar's user
// namespace sees it: a process of another user namespace shows as its
// mapped uid, or as the overflow uid (65534) when unmapped.
func PeerUID(local, remote net.Addr) (int, bool) {
	l, err1 := netip.ParseAddrPort(local.String())
	r, err2 := netip.ParseAddrPort(remote.String())
	if err1 != nil || err2 != nil {
		return 0, false
	}
	for _, name := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		uid, ok := findSocketUID(f, r, l)
		f.Close()
		if ok {
			return uid, true
		}
	}
	return 0, false
}

// findSocketUID scans a /proc/net/tcp{,6} table for the socket whose local
// address is local and remote address is remote, and returns its uid.
func findSocketUID(table io.Reader, local, remote netip.AddrPort) (int, bool) {
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	sc := bufio.NewScanner(table)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	sc.Scan() // header
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid ...
		if len(f) < 8 {
			continue
		}
		la, ok1 := parseProcAddr(f[1])
		ra, ok2 := parseProcAddr(f[2])
		if !ok1 || !ok2 || la != local || ra != remote {
			continue
		}
		uid, err := strconv.Atoi(f[7])
		if err != nil {
			return 0, false
		}
		return uid, true
	}
	return 0, false
}

// parseProcAddr parses "0100007F:0C38" (IPv4) or 32 hex digits and a port
// (IPv6): the address is printed as 32-bit words in host byte order, the
// port in hex. IPv4-mapped IPv6 addresses are unmapped.
func parseProcAddr(s string) (netip.AddrPort, bool) {
	a, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, false
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	raw, err := hex.DecodeString(a)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, false
	}
	b := make([]byte, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.NativeEndian.PutUint32(b[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	addr, _ := netip.AddrFromSlice(b)
	return netip.AddrPortFrom(addr.Unmap(), uint16(port)), true
}
