// containerd 2.x's snapshotter conformance suite (core/snapshots/testsuite), run against `clip serve`
// through containerd's own proxy snapshotter client, as containerd uses clip. Built and run by
// scripts/conformance.sh from Debian's golang-github-containerd-containerd-dev sources (GOPATH mode).
package conformance

import (
	"context"
	"testing"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/core/snapshots/proxy"
	"github.com/containerd/containerd/v2/core/snapshots/testsuite"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"clipconformance/clipserve"
)

func TestClipSnapshotter(t *testing.T) {
	if err := clipserve.RequireRoot(); err != nil {
		t.Fatal(err)
	}
	// The suite picks a few expectations by snapshotter name. clip's snapshots are overlayfs mounts, so
	// it gets overlayfs's: renaming a directory of a lower layer fails with EXDEV without redirect_dir,
	// which clip (like containerd's overlayfs snapshotter) does not turn on.
	testsuite.SnapshotterSuite(t, "overlayfs", newClip)
}

// newClip starts a fresh `clip serve` for one test of the suite, its state inside the test's root.
func newClip(ctx context.Context, root string) (snapshots.Snapshotter, func() error, error) {
	daemon, err := clipserve.Start(root)
	if err != nil {
		return nil, nil, err
	}
	conn, err := grpc.Dial("unix://"+daemon.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		_ = daemon.Stop()
		return nil, nil, err
	}
	sn := proxy.NewSnapshotter(snapshotsapi.NewSnapshotsClient(conn), "clip")
	cleanup := func() error {
		sn.Close()
		conn.Close()
		return daemon.Stop()
	}
	return sn, cleanup, nil
}
