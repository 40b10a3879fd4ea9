package boot

import (
	"strings"
	"testing"
)

const sampleMountinfo = `22 1 0:20 / / rw,relatime - overlay overlay rw,lowerdir=/ro,upperdir=/rw/u,workdir=/rw/w
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:2 - proc proc rw
30 22 0:25 / /mnt/home\040folder rw,relatime shared:7 - 9p share0 rw,trans=virtio
31 22 0:26 / /var/lib/docker rw,noatime master:9 - ext4 /dev/vdb rw
32 22 0:27 / /run rw,nosuid,nodev shared:4 master:1 - tmpfs tmpfs rw,mode=755
33 22 0:28 / /tmp rw,nosuid,nodev unbindable - tmpfs tmpfs rw
34 22 0:29 / /mnt/stack rw - tmpfs tmpfs rw
35 34 0:30 / /mnt/stack rw shared:12 - tmpfs tmpfs rw
`

func TestMountPropagation(t *testing.T) {
	for _, tc := range []struct {
		target string
		want   Propagation
	}{
		{"/", "private"},
		{"/proc", "shared"},
		{"/mnt/home folder", "shared"},
		{"/var/lib/docker", "slave"},
		{"/run", "shared+slave"},
		{"/tmp", "unbindable"},
		{"/mnt/stack", "shared"}, // the top of a stack is what a bind mount sees
	} {
		got, err := MountPropagation(strings.NewReader(sampleMountinfo), tc.target)
		if err != nil || got != tc.want {
			t.Errorf("MountPropagation(%q) = %q, %v; want %q", tc.target, got, err, tc.want)
		}
	}
	if _, err := MountPropagation(strings.NewReader(sampleMountinfo), "/nowhere"); err == nil || !strings.Contains(err.Error(), "/nowhere") {
		t.Errorf("unmounted target: err %v, want one naming the path", err)
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{
		`/a\040b`:      "/a b",
		`/tab\011x`:    "/tab\tx",
		`/back\134`:    `/back\`,
		`/plain`:       "/plain",
		`/short\04`:    `/short\04`,
		`/not\08x`:     `/not\08x`,
		`/two\040\040`: "/two  ",
	} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}
