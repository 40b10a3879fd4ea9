package main

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func event(typ, code uint16, value int32) []byte {
	b := make([]byte, 24)
	binary.NativeEndian.PutUint16(b[16:], typ)
	binary.NativeEndian.PutUint16(b[18:], code)
	binary.NativeEndian.PutUint32(b[20:], uint32(value))
	return b
}

func TestWaitKeyPower(t *testing.T) {
	var stream bytes.Buffer
	stream.Write(event(evKey, 30, 1))       // KEY_A
	stream.Write(event(evKey, keyPower, 0)) // release without press
	stream.Write(event(0, 0, 0))            // EV_SYN
	if waitKeyPower(bytes.NewReader(stream.Bytes())) {
		t.Fatal("no KEY_POWER press, but reported one")
	}
	stream.Write(event(evKey, keyPower, 1))
	if !waitKeyPower(bytes.NewReader(stream.Bytes())) {
		t.Fatal("KEY_POWER press missed")
	}
}
