// Command propagate measures how fast a revocation reaches subscribers: the time from Revoke
// returning to the event's receipt at the last of N subscribers, each on its own connection, with
// the subscribers in separate processes so that the server's cost is what is measured. It runs
// Treaty's revoker (the shared fan-out, subscribers dialled with subscriber.DialOptions) and a
// baseline (a goroutine per subscriber that marshals and sends each event itself, subscribers on
// grpc-go's defaults) side by side in the same run, alternating, on the same real bbolt log. It
// then measures revoke-to-deny through a PDP following the revoker over gRPC. With -etcd, it also
// runs the revoker with its log in an etcd cluster: one replica (etcd), or two on one prefix with
// Revoke calls to one and the subscribers (or the PDP) on the other (etcd-replica).
//
//	go run ./bench/propagate -n 100,1000,10000 -r 200
//	go run ./bench/propagate -etcd $(cat DIR/endpoints) -servers treaty,etcd,etcd-replica -deny-server etcd-replica
//
// It is a measuring tool, not part of the treaty binary. See README.md beside it.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/services/revokersvc"
	"github.com/treaty-dev/treaty/store"
)

func main() {
	var err error
	if len(os.Args) > 1 && os.Args[1] == "client" {
		err = runClient(os.Args[2:])
	} else {
		err = drive(os.Args[1:])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "propagate:", err)
		os.Exit(1)
	}
}

func drive(args []string) error {
	fs := flag.NewFlagSet("propagate", flag.ExitOnError)
	ns := fs.String("n", "100,1000,10000", "subscriber counts")
	r := fs.Int("r", 200, "revocations per server and subscriber count, one at a time")
	rounds := fs.Int("rounds", 2, "alternations of baseline and Treaty per subscriber count (the revocations are split among them)")
	perProc := fs.Int("per-process", 2500, "subscribers per client process (each holds one file per connection; about 20,000 are allowed here)")
	denyR := fs.Int("deny", 200, "revocations for the revoke-to-deny measurement; 0 skips it")
	fs.StringVar(&treatyClient, "treaty-client", "follower", "how Treaty's subscribers read: follower (subscriber.Follower) or raw (streams), both with subscriber.DialOptions; default: raw streams on grpc-go's defaults, as the baseline's")
	servers := fs.String("servers", "baseline,treaty", "servers to measure, in each round's order: baseline, treaty (bbolt), and with -etcd also etcd (one replica) and etcd-replica (Revoke to replica A, subscribers on replica B)")
	etcd := fs.String("etcd", "", "comma-separated client URLs of an etcd cluster (run with --max-txn-ops >= 8192, as go run ./bench/etcdcluster does), for the etcd kinds of -servers and -deny-server")
	fs.IntVar(&etcdPID, "etcd-pid", 0, "process id of the etcd cluster (go run ./bench/etcdcluster runs its members in one process): the etcd kinds' server-cpu then includes the cluster's CPU time")
	denyServer := fs.String("deny-server", "treaty", "the revoker the revoke-to-deny PDP follows: treaty (bbolt), etcd, or etcd-replica (revocations to replica A, the PDP follows replica B)")
	cpuprofile := fs.String("cpuprofile", "", "write the driver's (the servers') CPU profile here")
	fs.StringVar(&treatyGOGC, "treaty-client-gogc", "", "GOGC for Treaty's subscriber processes (empty: inherited, as the baseline's)")
	fs.StringVar(&clientProfile, "client-cpuprofile", "", "write each subscriber process's CPU profile to PREFIX-SERVER-N-RUN-PROCESS.prof and a summary of its allocations to .allocs (while the revocations run)")
	latencies := fs.String("latencies", "", "write every revocation's latency to this file, one line each: N, server, round, index in the round, ns from Revoke returning")
	fs.StringVar(&driverAllocs, "allocs", "", "write a summary of the driver's (the servers') allocations during each server's revocations to PREFIX-SERVER-N-RUN.allocs (slows the run: every allocation is recorded)")
	fs.Parse(args)
	if driverAllocs != "" {
		runtime.MemProfileRate = 1
	}
	stopProfile, err := startCPUProfile(*cpuprofile)
	if err != nil {
		return err
	}
	defer stopProfile()
	kinds := strings.Split(*servers, ",")
	if *etcd != "" {
		etcdEndpoints = strings.Split(strings.TrimSpace(*etcd), ",")
	}
	check := kinds
	if *denyR > 0 {
		check = append(slices.Clone(kinds), *denyServer)
	}
	if err := checkKinds(check...); err != nil {
		return err
	}
	if slices.ContainsFunc(check, etcdKind) {
		if err := checkEtcd(); err != nil {
			return err
		}
	}

	self, err := os.Executable()
	if err != nil {
		return err
	}
	fmt.Printf("propagate: %d revocations per server per N, in %d alternating rounds; %d subscribers per client process; GOMAXPROCS from %d CPUs\n\n",
		*r, *rounds, *perProc, runtime.NumCPU())
	var dump io.Writer = io.Discard
	if *latencies != "" {
		f, err := os.Create(*latencies)
		if err != nil {
			return err
		}
		defer f.Close()
		w := bufio.NewWriter(f)
		defer w.Flush()
		dump = w
	}
	fmt.Printf("%-8s %-14s %9s %9s %9s %9s %12s %12s\n", "N", "server", "p50", "p90", "p99", "max", "server-cpu", "client-cpu")
	for _, field := range strings.Split(*ns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(field))
		if err != nil || n <= 0 {
			return fmt.Errorf("bad -n %q", field)
		}
		lat := map[string][]time.Duration{}
		clear(serverCPU)
		clear(serverRevs)
		clear(clientCPU)
		clear(fromCall)
		for round := range *rounds {
			for _, kind := range kinds {
				per := *r / *rounds
				if round == *rounds-1 {
					per = *r - per*(*rounds-1)
				}
				d, err := propagate(self, kind, n, per, *perProc)
				if err != nil {
					return fmt.Errorf("%s N=%d: %w", kind, n, err)
				}
				lat[kind] = append(lat[kind], d...)
				for i, x := range d {
					fmt.Fprintf(dump, "%d %s %d %d %d\n", n, kind, round, i, x.Nanoseconds())
				}
			}
		}
		for _, kind := range kinds {
			q := quantiles(lat[kind])
			fmt.Printf("%-8d %-14s %9s %9s %9s %9s %12s %12s\n", n, kind, ms(q[0]), ms(q[1]), ms(q[2]), ms(q[3]), ms(perRev(kind)), ms(clientPerRev(kind)))
		}
		// Each ratio is of the first kind's numbers to the second's, where both ran.
		for _, pair := range [][3]string{{"ratio", "treaty", "baseline"}, {"etcd/treaty", "etcd", "treaty"}, {"replica/treaty", "etcd-replica", "treaty"}} {
			if !slices.Contains(kinds, pair[1]) || !slices.Contains(kinds, pair[2]) {
				continue
			}
			a, b := quantiles(lat[pair[1]]), quantiles(lat[pair[2]])
			fmt.Printf("%-8d %-14s %9.2f %9.2f %9.2f %9.2f %12.2f %12.2f\n", n, pair[0], ratio(a[0], b[0]), ratio(a[1], b[1]), ratio(a[2], b[2]), ratio(a[3], b[3]),
				ratio(perRev(pair[1]), perRev(pair[2])), ratio(clientPerRev(pair[1]), clientPerRev(pair[2])))
		}
		for _, kind := range kinds {
			q := quantiles(fromCall[kind])
			fmt.Printf("%-8d %-14s %9s %9s %9s %9s   (from calling Revoke)\n", n, kind, ms(q[0]), ms(q[1]), ms(q[2]), ms(q[3]))
		}
	}
	if *denyR > 0 {
		fmt.Println()
		return revokeToDeny(*denyR, *denyServer)
	}
	return nil
}

// server is a revoker served over gRPC on loopback in the driver process: on a fresh bbolt log
// in a temporary folder (baseline, treaty), or on a fresh prefix in the etcd cluster (etcd: one
// replica; etcd-replica: two replicas on one prefix, A taking the Revoke calls and B the
// subscribers, so that every event reaches B through etcd).
type server struct {
	dir        string       // a temporary folder (the PDP's cache lives there too)
	log        *revoker.Log // the log the Revoke calls append to
	addr       string       // where subscribers, and the PDP, connect
	revokeAddr string       // where Revoke calls go
	stops      []func()     // run in reverse order by stop
}

func startServer(kind string) (_ *server, err error) {
	if err := checkKinds(kind); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "treaty-propagate-")
	if err != nil {
		return nil, err
	}
	s := &server{dir: dir, stops: []func(){func() { os.RemoveAll(dir) }}}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	switch kind {
	case "treaty", "baseline":
		st, err := store.OpenBolt(filepath.Join(dir, "revoker.db"), revoker.Schema)
		if err != nil {
			return nil, err
		}
		s.stops = append(s.stops, func() { st.Close() })
		if s.log, err = revoker.Open(st, revoker.Config{Logger: quiet}); err != nil {
			return nil, err
		}
		if s.addr, err = s.serve(kind, s.log, quiet); err != nil {
			return nil, err
		}
		s.revokeAddr = s.addr
	case "etcd", "etcd-replica":
		base := newPrefix()
		s.stops = append(s.stops, func() { dropPrefix(base) }) // after the replicas stop
		replicas := 1
		if kind == "etcd-replica" {
			replicas = 2
		}
		var addrs []string
		for i := range replicas {
			log, stop, err := openReplica(base+"/revoker", quiet)
			if err != nil {
				return nil, err
			}
			s.stops = append(s.stops, stop)
			addr, err := s.serve(kind, log, quiet)
			if err != nil {
				return nil, err
			}
			if i == 0 {
				s.log = log
			}
			addrs = append(addrs, addr)
		}
		s.revokeAddr, s.addr = addrs[0], addrs[len(addrs)-1]
	}
	return s, nil
}

// serve serves log's revocation service on a loopback port: the baseline's Subscribe for
// baseline, revokersvc as shipped for the others.
func (s *server) serve(kind string, log *revoker.Log, logger *slog.Logger) (string, error) {
	svc := revokersvc.New(revokersvc.Config{Log: log, Logger: logger})
	srv := grpc.NewServer()
	if kind == "baseline" {
		treatyv1.RegisterRevocationServiceServer(srv, &baseline{Service: svc, log: log, heartbeat: revokersvc.DefaultHeartbeat})
	} else {
		svc.Register(srv)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	go srv.Serve(lis)
	s.stops = append(s.stops, func() {
		svc.Close()
		srv.Stop()
	})
	return lis.Addr().String(), nil
}

func (s *server) stop() {
	for _, stop := range slices.Backward(s.stops) {
		stop()
	}
	s.stops = nil
}

// treatyClient is how Treaty's subscribers read.
var treatyClient string

// treatyGOGC, if set, is the GOGC of Treaty's subscriber processes.
var treatyGOGC string

// clientProfile, if set, is the prefix of the subscriber processes' CPU profiles; runs counts the
// propagate calls, to name them apart.
var (
	clientProfile string
	runs          int
)

// driverAllocs, if set, is the prefix of the driver's allocation summaries.
var driverAllocs string

// clientProc is one subscriber process and the lines it reports.
type clientProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
}

// propagate runs r revocations against a fresh server of the given kind with n subscribers and
// returns each one's time from Revoke returning to receipt at the last subscriber.
func propagate(self, kind string, n, r, perProc int) ([]time.Duration, error) {
	srv, err := startServer(kind)
	if err != nil {
		return nil, err
	}
	defer srv.stop()

	runs++
	var procs []*clientProc
	defer func() {
		for _, p := range procs {
			p.stdin.Close()
		}
		for _, p := range procs {
			// The last line is the process's CPU time since it was ready; lines of revocations
			// that failed midway may come before it.
			for {
				line, err := nextLine(p, time.Minute)
				if err != nil {
					break
				}
				var d int64
				if _, err := fmt.Sscanf(line, "cpu %d", &d); err == nil {
					clientCPU[kind] += time.Duration(d)
					break
				}
			}
			p.cmd.Wait()
		}
	}()
	for left := n; left > 0; left -= perProc {
		args := []string{"client", "-addr", srv.addr, "-n", strconv.Itoa(min(left, perProc))}
		if kind != "baseline" && treatyClient != "default" {
			args = append(args, "-tuned", "-follower="+strconv.FormatBool(treatyClient == "follower"))
		}
		if clientProfile != "" {
			name := fmt.Sprintf("%s-%s-%d-%d-%d", clientProfile, kind, n, runs, len(procs))
			args = append(args, "-cpuprofile", name+".prof", "-memprofile", name+".allocs")
		}
		cmd := exec.Command(self, args...)
		if kind != "baseline" && treatyGOGC != "" {
			cmd.Env = append(os.Environ(), "GOGC="+treatyGOGC)
		}
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		p := &clientProc{cmd: cmd, stdin: stdin, lines: make(chan string, 1024)}
		go func() {
			defer close(p.lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				p.lines <- sc.Text()
			}
		}()
		procs = append(procs, p)
	}
	began := time.Now()
	for _, p := range procs {
		if line, err := nextLine(p, 5*time.Minute); err != nil || line != "ready" {
			return nil, fmt.Errorf("client not ready: %q %v", line, err)
		}
	}
	fmt.Fprintf(os.Stderr, "%s: %d subscribers in %d processes ready in %s\n", kind, n, len(procs), time.Since(began).Round(time.Millisecond))

	conn, err := grpc.NewClient(srv.revokeAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	client := treatyv1.NewRevocationServiceClient(conn)
	ctx := context.Background()
	out := make([]time.Duration, 0, r)
	if driverAllocs != "" {
		before := memRecords()
		defer func() {
			writeAllocs(fmt.Sprintf("%s-%s-%d-%d.allocs", driverAllocs, kind, n, runs), before)
		}()
	}
	cpu0 := cpuTime() + etcdCPU(kind)
	defer func() { serverCPU[kind] += cpuTime() + etcdCPU(kind) - cpu0; serverRevs[kind] += r }()
	for i := range r {
		called := time.Now()
		resp, err := client.Revoke(ctx, &treatyv1.RevokeRequest{
			TargetKind: treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, TargetId: fmt.Sprintf("jti-%s-%d-%d", kind, n, i), Reason: "propagation benchmark"})
		returned := time.Now()
		if err != nil {
			return nil, err
		}
		var last int64
		for _, p := range procs {
			line, err := nextLine(p, time.Minute)
			if err != nil {
				return nil, err
			}
			var seq uint64
			var at int64
			if _, err := fmt.Sscanf(line, "got %d %d", &seq, &at); err != nil || seq != resp.GetSequence() {
				return nil, fmt.Errorf("client said %q, want event %d", line, resp.GetSequence())
			}
			last = max(last, at)
		}
		out = append(out, time.Unix(0, last).Sub(returned))
		fromCall[kind] = append(fromCall[kind], time.Unix(0, last).Sub(called))
		// A short, uneven pause, so that every revocation finds the connections idle, as a kill
		// switch does.
		time.Sleep(time.Duration(1+i%5) * time.Millisecond)
	}
	return out, nil
}

func nextLine(p *clientProc, timeout time.Duration) (string, error) {
	select {
	case line, ok := <-p.lines:
		if !ok {
			return "", fmt.Errorf("client process ended")
		}
		return line, nil
	case <-time.After(timeout):
		return "", fmt.Errorf("client silent for %s", timeout)
	}
}

// serverCPU and serverRevs add up the driver process's CPU time (user and system) during the
// revocations, per server, and the revocations: the servers' cost per revocation, which a busy
// machine disturbs far less than it disturbs latency. It includes the driver's own Revoke calls,
// the same for both servers. For the etcd kinds it adds the cluster process's CPU time with
// -etcd-pid (etcdCPU); without it, the etcd members' work is not counted.
var (
	serverCPU  = map[string]time.Duration{}
	serverRevs = map[string]int{}
	// clientCPU adds up the subscriber processes' CPU time from ready to the end of the
	// revocations: the receiving end's cost, which the two ends' shared cores also pay.
	clientCPU = map[string]time.Duration{}
)

// fromCall holds each revocation's time from calling Revoke (rather than from its return) to the
// last receipt: a server that delays its reply while it broadcasts looks faster by the main
// measure, not by this one.
var fromCall = map[string][]time.Duration{}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// quantiles returns p50, p90, p99 and the maximum.
func quantiles(d []time.Duration) [4]time.Duration {
	if len(d) == 0 {
		return [4]time.Duration{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return [4]time.Duration{at(0.50), at(0.90), at(0.99), s[len(s)-1]}
}

// perRev is the driver's CPU time per revocation with kind serving.
func perRev(kind string) time.Duration {
	if serverRevs[kind] == 0 {
		return 0
	}
	return serverCPU[kind] / time.Duration(serverRevs[kind])
}

// clientPerRev is the subscriber processes' CPU time per revocation with kind serving.
func clientPerRev(kind string) time.Duration {
	if serverRevs[kind] == 0 {
		return 0
	}
	return clientCPU[kind] / time.Duration(serverRevs[kind])
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// startCPUProfile starts writing this process's CPU profile to path, if path is not empty, and
// returns what stops it (and closes the file).
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
