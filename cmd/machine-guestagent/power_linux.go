package main

import (
	"context"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
)

// Linux input event constants (linux/input-event-codes.h).
const (
	evKey    = 1
	keyPower = 116
)

// watchPowerButton shuts down cleanly when an input device reports KEY_POWER, which is how
// an ACPI power-button press (QEMU system_powerdown) reaches a system without acpid. It needs
// the kernel's button and evdev drivers; without input devices it does nothing.
func (a *agent) watchPowerButton() {
	devs, _ := filepath.Glob("/dev/input/event*")
	for _, d := range devs {
		f, err := os.Open(d)
		if err != nil {
			continue
		}
		go func() {
			defer f.Close()
			if waitKeyPower(f) {
				a.log.Info("shutdown requested by the power button", "device", d)
				a.shutdown(context.Background())
			}
		}()
	}
	if len(devs) == 0 {
		a.log.Debug("no input devices: the ACPI power button is not watched")
	}
}

// waitKeyPower reads 64-bit struct input_event records (16-byte timeval, type, code, value)
// until a KEY_POWER press.
func waitKeyPower(r io.Reader) bool {
	var ev [24]byte
	for {
		if _, err := io.ReadFull(r, ev[:]); err != nil {
			return false
		}
		typ := binary.NativeEndian.Uint16(ev[16:18])
		code := binary.NativeEndian.Uint16(ev[18:20])
		value := int32(binary.NativeEndian.Uint32(ev[20:24]))
		if typ == evKey && code == keyPower && value == 1 {
			return true
		}
	}
}
