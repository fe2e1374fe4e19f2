package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/subscriber"
)

// runClient is one subscriber process: n subscriptions, each on its own connection. It prints
// "ready" once every subscription has its opening heartbeat, then "got SEQ UNIXNANO" when the
// last of its subscriptions received event SEQ, at that wall-clock time. When its stdin closes it
// says "cpu NANOS", its CPU time since it was ready, and ends.
func runClient(args []string) error {
	fs := flag.NewFlagSet("client", flag.ExitOnError)
	addr := fs.String("addr", "", "the revoker's address")
	n := fs.Int("n", 100, "subscriptions, each on its own connection")
	tuned := fs.Bool("tuned", false, "dial with subscriber.DialOptions (Treaty's side); else grpc-go defaults")
	useFollower := fs.Bool("follower", false, "read through subscriber.Follower; else raw streams")
	cpuprofile := fs.String("cpuprofile", "", "write this process's CPU profile here (while the revocations run)")
	memprofile := fs.String("memprofile", "", "write this process's allocation profile here (allocations while the revocations run)")
	fs.Parse(args)
	if *memprofile != "" {
		runtime.MemProfileRate = 1 // every allocation, exactly: this run is for profiling, not timing
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := bufio.NewWriter(os.Stdout)
	var outMu sync.Mutex
	say := func(format string, a ...any) {
		outMu.Lock()
		fmt.Fprintf(out, format+"\n", a...)
		out.Flush()
		outMu.Unlock()
	}

	var (
		mu    sync.Mutex
		count = map[uint64]int{}
		ready sync.WaitGroup
		wg    sync.WaitGroup
	)
	received := func(seq uint64, at int64) {
		mu.Lock()
		count[seq]++
		done := count[seq] == *n
		if done {
			delete(count, seq)
		}
		mu.Unlock()
		if done {
			say("got %d %d", seq, at) // the last subscription to receive seq is this one, now
		}
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if *tuned {
		opts = append(opts, subscriber.DialOptions()...)
	}
	// Connect a few hundred at a time, so that the listener's backlog never overflows.
	gate := make(chan struct{}, 200)
	ready.Add(*n)
	for range *n {
		conn, err := grpc.NewClient(*addr, opts...)
		if err != nil {
			return err
		}
		defer conn.Close()
		gate <- struct{}{}
		wg.Go(func() {
			once := sync.OnceFunc(func() { ready.Done(); <-gate })
			if *useFollower {
				follow(ctx, conn, once, received)
			} else {
				raw(ctx, conn, once, received)
			}
		})
	}
	ready.Wait()
	stopProfile, err := startCPUProfile(*cpuprofile) // the revocations only, not the subscriptions' setup
	if err != nil {
		return err
	}
	var before []runtime.MemProfileRecord
	if *memprofile != "" {
		before = memRecords()
	}
	cpu0 := cpuTime()
	say("ready")
	io.Copy(io.Discard, os.Stdin) // until the driver closes it
	say("cpu %d", cpuTime()-cpu0) // this process's CPU time while the revocations ran
	stopProfile()
	if *memprofile != "" {
		if err := writeAllocs(*memprofile, before); err != nil {
			return err
		}
	}
	cancel()
	wg.Wait()
	return nil
}

func raw(ctx context.Context, conn *grpc.ClientConn, ready func(), received func(uint64, int64)) {
	stream, err := treatyv1.NewRevocationServiceClient(conn).Subscribe(ctx, &treatyv1.SubscribeRequest{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "subscribe:", err)
		os.Exit(1)
	}
	for {
		m, err := stream.Recv()
		if err != nil {
			if ctx.Err() == nil {
				fmt.Fprintln(os.Stderr, "recv:", err)
				os.Exit(1)
			}
			return
		}
		if ev := m.GetEvent(); ev != nil {
			received(ev.GetSequence(), time.Now().UnixNano())
		} else {
			ready()
		}
	}
}

func follow(ctx context.Context, conn *grpc.ClientConn, ready func(), received func(uint64, int64)) {
	f := subscriber.Follow(ctx, subscriber.Config{Conn: conn, OnHeartbeat: func(*treatyv1.Heartbeat) { ready() }})
	defer f.Close()
	for {
		// NextShared: this subscriber reads each event's sequence and is done with it, as a
		// gateway adding a jti to its denylist is.
		ev, err := f.NextShared()
		if err != nil {
			if ctx.Err() == nil {
				fmt.Fprintln(os.Stderr, "follow:", err)
				os.Exit(1)
			}
			return
		}
		received(ev.GetSequence(), time.Now().UnixNano())
	}
}

// memRecords returns the allocation profile up to now: the runtime publishes it up to two
// collections late, hence the two.
func memRecords() []runtime.MemProfileRecord {
	runtime.GC()
	runtime.GC()
	n, _ := runtime.MemProfile(nil, true)
	recs := make([]runtime.MemProfileRecord, n+100)
	n, _ = runtime.MemProfile(recs, true)
	return recs[:n]
}

// writeAllocs writes a text summary of the allocations made since before: objects and bytes per
// allocation site (its innermost frames), most objects first.
func writeAllocs(path string, before []runtime.MemProfileRecord) error {
	type key [16]uintptr
	type count struct{ objs, bytes int64 }
	base := map[key]count{}
	for _, r := range before {
		base[key(r.Stack0[:16])] = count{r.AllocObjects, r.AllocBytes}
	}
	var rows []struct {
		k key
		c count
	}
	var total count
	for _, r := range memRecords() {
		k := key(r.Stack0[:16])
		b := base[k]
		c := count{r.AllocObjects - b.objs, r.AllocBytes - b.bytes}
		if c.objs <= 0 {
			continue
		}
		total.objs += c.objs
		total.bytes += c.bytes
		rows = append(rows, struct {
			k key
			c count
		}{k, c})
	}
	slices.SortFunc(rows, func(a, b struct {
		k key
		c count
	}) int {
		return int(b.c.objs - a.c.objs)
	})
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintf(f, "total %d objects %d bytes\n", total.objs, total.bytes)
	for _, r := range rows[:min(len(rows), 25)] {
		fmt.Fprintf(f, "\n%d objects %d bytes\n", r.c.objs, r.c.bytes)
		frames := runtime.CallersFrames(r.k[:])
		for {
			fr, more := frames.Next()
			if fr.Function != "" {
				fmt.Fprintf(f, "  %s\n", fr.Function)
			}
			if !more {
				break
			}
		}
	}
	return nil
}
