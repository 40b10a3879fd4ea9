package oci

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// ErrDigest is returned when a blob's bytes do not hash to the digest that names it.
var ErrDigest = errors.New("digest mismatch")

// maxAttempts bounds the range-request retries of one blob download.
const maxAttempts = 5

// Progress receives download progress; the CLI draws bars or prints lines with it.
type Progress interface {
	// Blob is called once per blob that has to be downloaded.
	Blob(role string, d v1.Descriptor) BlobProgress
}

// BlobProgress follows one blob. Start is called before each attempt with the bytes
// already on disk (non-zero when it resumes); Write with each chunk as it streams.
type BlobProgress interface {
	io.Writer
	Start(have int64)
	Done(err error)
}

// blobFetcher GETs blobs of one repository with go-containerregistry's authenticated
// transport; remote.Layer cannot resume, this does (Range: bytes=N-).
type blobFetcher struct {
	client *http.Client
	url    string // ends in /blobs/
	ref    string
}

func (r *Remote) fetcher(ctx context.Context, n name.Reference) (*blobFetcher, error) {
	repo := n.Context()
	auth, err := r.keychain().Resolve(repo)
	if err != nil {
		return nil, fmt.Errorf("registry %s: credentials: %w", repo.RegistryStr(), err)
	}
	rt, err := transport.NewWithContext(ctx, repo.Registry, auth, r.transport(), []string{repo.Scope(transport.PullScope)})
	if err != nil {
		return nil, fmt.Errorf("registry %s: %w", repo.RegistryStr(), err)
	}
	return &blobFetcher{
		client: &http.Client{Transport: rt},
		url:    fmt.Sprintf("%s://%s/v2/%s/blobs/", repo.Registry.Scheme(), repo.RegistryStr(), repo.RepositoryStr()),
		ref:    n.String(),
	}, nil
}

// DigestError says which blob of which reference did not verify.
type DigestError struct {
	Ref, Role string
	Want      v1.Hash
	Got       string
	Size      int64
}

func (e *DigestError) Error() string {
	return fmt.Sprintf("%s: %s blob %s: %v: got %s (%d bytes); the registry served different bytes, nothing was kept",
		e.Ref, e.Role, e.Want, ErrDigest, e.Got, e.Size)
}

func (e *DigestError) Unwrap() error { return ErrDigest }

// fetch downloads the blob d to final, verifying it while it streams. The bytes collect
// in final+".partial", renamed to final only once they hash to d.Digest; a cut connection
// keeps the partial file and the next attempt (or the next pull) asks for the rest.
func (f *blobFetcher) fetch(ctx context.Context, d v1.Descriptor, role, final string, p BlobProgress) error {
	part := final + ".partial"
	var err error
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		var retry bool
		retry, err = f.attempt(ctx, d, role, part, p)
		if err == nil {
			if err := os.Rename(part, final); err != nil {
				return fmt.Errorf("%s blob %s: %w", role, d.Digest, err)
			}
			syncDir(final)
			return nil
		}
		if !retry || ctx.Err() != nil {
			break
		}
	}
	return err
}

// attempt makes one GET; retry says whether what stopped it is worth another range request.
func (f *blobFetcher) attempt(ctx context.Context, d v1.Descriptor, role, part string, p BlobProgress) (retry bool, err error) {
	file, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return false, fmt.Errorf("%s blob %s: %w", role, d.Digest, err)
	}
	defer file.Close()
	h := sha256.New()
	have, err := io.Copy(h, file) // re-hash what an earlier attempt kept
	if err != nil {
		return false, fmt.Errorf("%s blob %s: %w", role, d.Digest, err)
	}
	if have > d.Size {
		if have, err = restart(file, h); err != nil {
			return false, err
		}
	}
	if have == d.Size {
		return false, f.finish(file, h, have, d, role, part)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.url+d.Digest.String(), nil)
	if err != nil {
		return false, err
	}
	if have > 0 {
		// A closed range: some registries (go-containerregistry's own) reject "bytes=N-".
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", have, d.Size-1))
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return true, fmt.Errorf("%s: %s blob %s: %w", f.ref, role, d.Digest, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusPartialContent && have > 0 && rangeStart(resp.Header.Get("Content-Range")) == have:
	case resp.StatusCode == http.StatusOK:
		if have, err = restart(file, h); err != nil {
			return false, err
		}
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		// The registry will not resume what is on disk: drop it, the next attempt starts over.
		_, err := restart(file, h)
		return err == nil, fmt.Errorf("%s: %s blob %s: registry refused to resume at byte %d: %s", f.ref, role, d.Digest, have, resp.Status)
	default:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return resp.StatusCode >= 500, fmt.Errorf("%s: %s blob %s: registry answered %s: %s", f.ref, role, d.Digest, resp.Status, strings.TrimSpace(string(b)))
	}
	p.Start(have)
	// One byte more than expected is enough to tell an over-long blob from a whole one.
	n, err := io.Copy(io.MultiWriter(file, h, p), io.LimitReader(resp.Body, d.Size-have+1))
	have += n
	if err != nil {
		file.Sync()
		return true, fmt.Errorf("%s: %s blob %s: download stopped after %d of %d bytes: %w", f.ref, role, d.Digest, have, d.Size, err)
	}
	if have < d.Size {
		file.Sync()
		return true, fmt.Errorf("%s: %s blob %s: download stopped after %d of %d bytes: %w", f.ref, role, d.Digest, have, d.Size, io.ErrUnexpectedEOF)
	}
	return false, f.finish(file, h, have, d, role, part)
}

// finish checks the whole blob; a mismatch removes the partial file so nothing of it stays.
func (f *blobFetcher) finish(file *os.File, h hash.Hash, have int64, d v1.Descriptor, role, part string) error {
	got := "sha256:" + hex.EncodeToString(h.Sum(nil))
	if have != d.Size || got != d.Digest.String() {
		file.Close()
		os.Remove(part)
		return &DigestError{Ref: f.ref, Role: role, Want: d.Digest, Got: got, Size: have}
	}
	if err := file.Sync(); err != nil {
		return fmt.Errorf("%s blob %s: %w", role, d.Digest, err)
	}
	return file.Close()
}

func restart(file *os.File, h hash.Hash) (int64, error) {
	h.Reset()
	if err := file.Truncate(0); err != nil {
		return 0, err
	}
	_, err := file.Seek(0, io.SeekStart)
	return 0, err
}

// rangeStart parses the first byte of a Content-Range header ("bytes 100-199/200"), or -1.
func rangeStart(cr string) int64 {
	rest, ok := strings.CutPrefix(cr, "bytes ")
	if !ok {
		return -1
	}
	start, _, ok := strings.Cut(rest, "-")
	if !ok {
		return -1
	}
	n, err := strconv.ParseInt(start, 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// verifyingWriter hashes what passes through it so a copy can be checked at the end.
type verifyingWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (v *verifyingWriter) Write(b []byte) (int, error) {
	n, err := v.w.Write(b)
	v.h.Write(b[:n])
	v.n += int64(n)
	return n, err
}

func (v *verifyingWriter) digest() string { return "sha256:" + hex.EncodeToString(v.h.Sum(nil)) }

// nopProgress is used when the caller wants none.
type nopProgress struct{}

func (nopProgress) Blob(string, v1.Descriptor) BlobProgress { return nopBlob{} }

type nopBlob struct{}

func (nopBlob) Write(b []byte) (int, error) { return len(b), nil }
func (nopBlob) Start(int64)                 {}
func (nopBlob) Done(error)                  {}
