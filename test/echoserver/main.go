// Command udpecho answers every UDP datagram with the same bytes. The end-to-end tests put
// it in a container image to check UDP port publishing.
package main

import (
	"flag"
	"log"
	"net"
)

func main() {
	addr := flag.String("listen", ":5353", "UDP address to echo on")
	flag.Parse()
	c, err := net.ListenPacket("udp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			log.Fatal(err)
		}
		c.WriteTo(buf[:n], from)
	}
}
