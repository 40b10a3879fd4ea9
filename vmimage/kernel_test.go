package vmimage

import (
	"bytes"
	"compress/gzip"
	"errors"
	"testing"
)

func fakeARM64Image() []byte {
	b := make([]byte, 4096)
	copy(b, "MZ") // EFI stub header, as Debian's arm64 Image has
	copy(b[56:], "ARM\x64")
	copy(b[100:], "payload")
	return b
}

func TestARM64Kernel(t *testing.T) {
	img := fakeARM64Image()
	got, err := arm64Kernel(img)
	if err != nil || !bytes.Equal(got, img) {
		t.Fatalf("plain Image: %v", err)
	}

	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(img)
	zw.Close()
	got, err = arm64Kernel(gz.Bytes())
	if err != nil || !bytes.Equal(got, img) {
		t.Fatalf("gzip'd Image: %v", err)
	}

	gz.Reset()
	zw = gzip.NewWriter(&gz)
	zw.Write(make([]byte, 4096))
	zw.Close()
	for name, data := range map[string][]byte{
		"gzip of something else": gz.Bytes(),
		"bzImage":                fakeBzImage(),
		"short":                  []byte("ARM"),
		"magic at wrong offset":  append([]byte("ARM\x64"), make([]byte, 100)...),
	} {
		if _, err := arm64Kernel(data); !errors.Is(err, ErrKernelFormat) {
			t.Errorf("%s: err = %v, want ErrKernelFormat", name, err)
		}
	}
}

func fakeBzImage() []byte {
	b := make([]byte, 0x400)
	copy(b[0x202:], "HdrS")
	return b
}

func TestBootableKernel(t *testing.T) {
	if _, err := bootableKernel("amd64", fakeBzImage()); err != nil {
		t.Errorf("amd64 bzImage: %v", err)
	}
	if _, err := bootableKernel("amd64", fakeARM64Image()); !errors.Is(err, ErrKernelFormat) {
		t.Errorf("amd64 given an arm64 Image: %v", err)
	}
	if _, err := bootableKernel("arm64", fakeBzImage()); !errors.Is(err, ErrKernelFormat) {
		t.Errorf("arm64 given a bzImage: %v", err)
	}
}
