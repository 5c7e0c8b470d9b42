// Package clipserve starts one `clip serve` daemon for one run of containerd's snapshotter conformance
// suite and stops it again. It knows nothing of containerd's Go API, so the suites for containerd 1.6 and
// 2.x (test/conformance/containerd-*) share it.
package clipserve

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Bin is the clip executable under test (scripts/conformance.sh passes bin/clip).
var Bin = flag.String("clip.bin", "", "path of the clip executable to test")

const (
	startTimeout = 30 * time.Second
	stopTimeout  = 15 * time.Second
)

// Daemon is one running `clip serve`.
type Daemon struct {
	Socket string
	Log    string
	cmd    *exec.Cmd
	done   chan error
}

// RequireRoot fails (never skips) the test run unless it runs as root with containerd's -test.root flag set:
// a skipped conformance test must not pass as a passing one.
func RequireRoot() error {
	if os.Geteuid() != 0 {
		return errors.New("the snapshotter conformance suite mounts snapshots: run it as root")
	}
	f := flag.Lookup("test.root")
	if f == nil || f.Value.String() != "true" {
		return errors.New("pass -test.root: without it containerd's testutil skips the tests that need root")
	}
	if *Bin == "" {
		return errors.New("pass -clip.bin=PATH (the clip executable to test)")
	}
	return nil
}

// Start runs `clip serve` with its state in dir/clip and its socket at dir/clip.sock, and returns once the
// socket accepts connections.
func Start(dir string) (*Daemon, error) {
	d := &Daemon{Socket: filepath.Join(dir, "clip.sock"), Log: filepath.Join(dir, "clip.log"), done: make(chan error, 1)}
	logFile, err := os.Create(d.Log)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	d.cmd = exec.Command(*Bin, "serve", "--root", filepath.Join(dir, "clip"), "--address", d.Socket, "--log-level", "debug")
	d.cmd.Stdout = logFile
	d.cmd.Stderr = logFile
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { d.done <- d.cmd.Wait() }()
	deadline := time.Now().Add(startTimeout)
	for {
		conn, err := net.DialTimeout("unix", d.Socket, time.Second)
		if err == nil {
			conn.Close()
			return d, nil
		}
		select {
		case werr := <-d.done:
			d.done <- werr
			return nil, fmt.Errorf("clip serve exited before listening (%v); log: %s", werr, tail(d.Log))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = d.Stop()
			return nil, fmt.Errorf("clip serve did not listen on %s within %s; log: %s", d.Socket, startTimeout, tail(d.Log))
		}
	}
}

// Stop sends SIGTERM, waits for a clean exit, and SIGKILLs the daemon if it does not exit in time.
// It returns an error unless the daemon exited with status 0 after SIGTERM.
func (d *Daemon) Stop() error {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		d.done <- err
		if err != nil {
			return fmt.Errorf("clip serve exited with %v; log: %s", err, tail(d.Log))
		}
		return nil
	case <-time.After(stopTimeout):
		_ = d.cmd.Process.Kill()
		err := <-d.done
		d.done <- err
		return fmt.Errorf("clip serve ignored SIGTERM for %s and was killed; log: %s", stopTimeout, tail(d.Log))
	}
}

// tail returns the last few KiB of a log file, for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	const max = 4096
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}
