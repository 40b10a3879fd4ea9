// Command echoserver answers every UDP datagram and echoes every TCP stream. The end-to-end
// tests and benchmarks put it in a container image to check and measure published ports.
package main

import (
	"flag"
	"io"
	"log"
	"net"
)

func main() {
	udp := flag.String("udp", "", "UDP address to echo on (e.g. :5353)")
	tcp := flag.String("tcp", "", "TCP address to echo on (e.g. :9000)")
	flag.Parse()
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
