// Command hostprobe runs inside test containers for the host-services tests: it fetches a
// URL, sends a UDP datagram and prints the reply, times DNS lookups, and prints inotify
// events under a folder. It is static Go (its own resolver), so it needs nothing from the
// image.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	get := flag.String("get", "", "GET this URL and print the body")
	udp := flag.String("udp", "", "send -msg to this UDP HOST:PORT and print the reply")
	msg := flag.String("msg", "ping", "the datagram -udp sends")
	lookup := flag.String("dns", "", "resolve this name through resolv.conf and print the addresses and the time taken")
	watch := flag.String("watch", "", "print inotify events under this folder, one per line, until killed")
	flag.Parse()
	var err error
	switch {
	case *get != "":
		err = doGet(*get)
	case *udp != "":
		err = doUDP(*udp, *msg)
	case *lookup != "":
		err = doDNS(*lookup)
	case *watch != "":
		err = doWatch(*watch)
	default:
		err = fmt.Errorf("nothing to do (see -h)")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hostprobe:", err)
		os.Exit(1)
	}
}

func doGet(url string) error {
	c := &http.Client{Timeout: 20 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(os.Stdout, resp.Body)
	return err
}

func doUDP(addr, msg string) error {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	buf := make([]byte, 64<<10)
	// A datagram can be lost; ask a few times.
	for try := 0; try < 5; try++ {
		if _, err := c.Write([]byte(msg)); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, err := c.Read(buf)
		if err == nil {
			fmt.Printf("%s\n", buf[:n])
			return nil
		}
	}
	return fmt.Errorf("no reply from %s", addr)
}

func doDNS(name string) error {
	r := &net.Resolver{PreferGo: true}
	for i := 0; i < 3; i++ {
		start := time.Now()
		addrs, err := r.LookupHost(context.Background(), name)
		d := time.Since(start)
		if err != nil {
			return err
		}
		fmt.Printf("%v %.2fms\n", addrs, float64(d.Microseconds())/1000)
	}
	return nil
}
