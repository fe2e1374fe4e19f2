package services

import (
	"google.golang.org/grpc"

	"github.com/treaty-dev/treaty/posture"
	"github.com/treaty-dev/treaty/registry"
	"github.com/treaty-dev/treaty/services/issuersvc"
	"github.com/treaty-dev/treaty/services/reportsvc"
)

// startReports registers the report service beside the registry: posture findings over the
// registry, its audit trail and the issuer's inventory (when an issuer runs here or is a peer),
// recomputed on the schedule Start begins once the server serves.
func (s *Server) startReports(reg *registry.Registry, peer func(string) (*grpc.ClientConn, error)) error {
	cfg := s.cfg
	gcfg := reportsvc.GatherConfig{Registry: reg, UsageWindow: cfg.Posture.Rules.WithDefaults().UsageWindow, Logger: s.log}
	if cfg.runs(Issuer) || cfg.Peers[Issuer] != "" {
		conn, err := peer(Issuer)
		if err != nil {
			return err
		}
		gcfg.Credentials = issuersvc.NewCredentialSource(conn)
	}
	g, err := reportsvc.NewGatherer(gcfg)
	if err != nil {
		return err
	}
	runner, err := posture.NewRunner(posture.RunnerConfig{
		Gather: g.Gather, Rules: cfg.Posture.Rules, Interval: cfg.Posture.Interval, OnNew: cfg.Posture.OnNew, Logger: s.log,
	})
	if err != nil {
		return err
	}
	revConn, err := peer(Revoker)
	if err != nil {
		return err
	}
	s.posture = runner
	reportsvc.New(reportsvc.Config{
		Runner: runner, Gatherer: g, Revocations: reportsvc.RevocationsFromRevoker(revConn),
		MaxCredentialTTL: cfg.MaxCredentialTTL, Logger: s.log,
	}).Register(s.grpc)
	return nil
}
