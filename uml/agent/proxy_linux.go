package agent

import (
	"fmt"
	"log"
	"net"

	"github.com/hashicorp/yamux"
	"golang.org/x/sys/unix"
)

// startGuestProxy listens on addr (a loopback address) inside the guest and forwards every
// connection to the host over sess, until the session ends.
func startGuestProxy(sess *yamux.Session, addr string, logger *log.Logger) error {
	if err := CheckProxyAddr(addr); err != nil {
		return err
	}
	// PID 1 runs before anything has configured networking: even lo is down, and a listen on
	// 127.0.0.1 would succeed but nothing could connect.
	if err := loopbackUp(); err != nil {
		return err
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	go func() {
		<-sess.CloseChan()
		l.Close()
	}()
	go forwardProxyConns(sess, l, logger)
	return nil
}

// loopbackUp sets the up flag of lo; the kernel then gives it 127.0.0.1/8 (and ::1) by itself.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bring lo up: socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring lo up: get flags: %w", err)
	}
	flags := ifr.Uint16()
	if flags&unix.IFF_UP != 0 {
		return nil
	}
	ifr.SetUint16(flags | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring lo up: set flags: %w", err)
	}
	return nil
}
