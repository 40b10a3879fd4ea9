// Command echoserver answers every UDP datagram and echoes every TCP stream. The end-to-end
// tests and benchmarks put it in a container image to check and measure published ports.
// With -records it is the fault suite's writer instead: it appends numbered records to a
// file, fsyncs each and only then prints its number; -verify counts the records a file holds.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strconv"
)

func main() {
	udp := flag.String("udp", "", "UDP address to echo on (e.g. :5353)")
	tcp := flag.String("tcp", "", "TCP address to echo on (e.g. :9000)")
	records := flag.String("records", "", "append numbered, fsynced records to this file, printing each number once it is on disk")
	verify := flag.String("verify", "", "print the number of consecutive records this file holds")
	flag.Parse()
	switch {
	case *records != "":
		log.Fatal(writeRecords(*records))
	case *verify != "":
		n, tail, err := countRecords(*verify)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("records %d tail %d\n", n, tail)
		return
	}
	if *udp == "" && *tcp == "" {
		log.Fatal("give -udp and/or -tcp")
	}
	errc := make(chan error, 2)
	if *udp != "" {
		go func() { errc <- echoUDP(*udp) }()
	}
	if *tcp != "" {
		go func() { errc <- echoTCP(*tcp) }()
	}
	log.Fatal(<-errc)
}

func echoUDP(addr string) error {
	c, err := net.ListenPacket("udp", addr)
	if err != nil {
		return err
	}
	buf := make([]byte, 64<<10)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return err
		}
		c.WriteTo(buf[:n], from)
	}
}

func echoTCP(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			io.Copy(c, c)
		}()
	}
}

// writeRecords appends records after those the file holds, forever.
func writeRecords(path string) error {
	n, _, err := countRecords(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	for i := n + 1; ; i++ {
		if _, err := fmt.Fprintf(f, "%d\n", i); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
		fmt.Printf("%d\n", i)
	}
}

// countRecords returns how many records 1..n the file holds in order, and how many bytes
// follow them (a record cut by a power loss, never acknowledged). A record out of sequence
// is an error: acknowledged data was lost or corrupted.
func countRecords(path string) (n, tail int, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return n, len(b), nil
		}
		v, err := strconv.Atoi(string(b[:i]))
		if err != nil || v != n+1 {
			if n > 0 && bytes.Count(b, []byte("\n")) == 1 && allZero(b[:i]) {
				return n, len(b), nil
			}
			return n, len(b), fmt.Errorf("record %d: found %q", n+1, b[:i])
		}
		n++
		b = b[i+1:]
	}
	return n, 0, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
