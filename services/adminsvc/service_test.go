package adminsvc_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/treaty-dev/treaty/backup"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/services/adminsvc"
	"github.com/treaty-dev/treaty/services/grpctest"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/storetest"
)

func TestBackup(t *testing.T) {
	schema := store.Schema{Name: "alpha", Version: 1, Buckets: []string{"b"}}
	st := storetest.OpenBolt(t, schema)
	if err := st.Update(func(tx store.Tx) error { return tx.Put("b", []byte("k"), []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	svc := adminsvc.New(adminsvc.Config{Stores: []backup.Source{{Name: "alpha", Store: st}}})
	client := treatyv1.NewAdminServiceClient(grpctest.Serve(t, svc.Register))
	ctx := context.Background()

	out := filepath.Join(t.TempDir(), "x.backup")
	resp, err := client.Backup(ctx, &treatyv1.BackupRequest{OutPath: out})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetPath() != out || len(resp.GetStores()) != 1 || resp.GetStores()[0].GetName() != "alpha" || resp.GetStores()[0].GetSizeBytes() == 0 {
		t.Fatalf("Backup = %v", resp)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v, mode %v", err, fi.Mode())
	}
	for _, tc := range []struct {
		path string
		code codes.Code
	}{
		{"", codes.InvalidArgument},
		{"relative/x.backup", codes.InvalidArgument},
		{out, codes.FailedPrecondition},
		{filepath.Join(t.TempDir(), "missing", "x.backup"), codes.FailedPrecondition},
	} {
		_, err := client.Backup(ctx, &treatyv1.BackupRequest{OutPath: tc.path})
		if status.Code(err) != tc.code {
			t.Errorf("Backup(%q) = %v, want %v", tc.path, err, tc.code)
		}
	}
}
