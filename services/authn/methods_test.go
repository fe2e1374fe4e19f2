package authn

import (
	"slices"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/treaty-dev/treaty/access"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// served is every service Treaty's gRPC server may run.
var served = []*grpc.ServiceDesc{
	&treatyv1.AccessService_ServiceDesc, &treatyv1.AdminService_ServiceDesc, &treatyv1.AuditService_ServiceDesc,
	&treatyv1.DecisionService_ServiceDesc, &treatyv1.DecisionLogService_ServiceDesc, &treatyv1.InventoryService_ServiceDesc,
	&treatyv1.IssuerService_ServiceDesc, &treatyv1.NotifyService_ServiceDesc, &treatyv1.RegistryService_ServiceDesc,
	&treatyv1.ReportService_ServiceDesc, &treatyv1.RevocationService_ServiceDesc,
	&healthpb.Health_ServiceDesc, &reflectionv1.ServerReflection_ServiceDesc, &reflectionv1alpha.ServerReflection_ServiceDesc,
	&authv3.Authorization_ServiceDesc,
}

func fullMethods(d *grpc.ServiceDesc) []string {
	var out []string
	for _, m := range d.Methods {
		out = append(out, "/"+d.ServiceName+"/"+m.MethodName)
	}
	for _, s := range d.Streams {
		out = append(out, "/"+d.ServiceName+"/"+s.StreamName)
	}
	return out
}

// TestEveryMethodHasARule fails when a method Treaty serves has no entry in the method table (it
// would be refused to everyone), when the table names a method nothing serves, or when a
// treaty.v1 service is missing from the list above.
func TestEveryMethodHasARule(t *testing.T) {
	all := map[string]bool{}
	for _, d := range served {
		for _, m := range fullMethods(d) {
			all[m] = true
			if _, ok := methods[m]; !ok {
				t.Errorf("%s has no entry in methods.go", m)
			}
		}
	}
	for m := range methods {
		if !all[m] {
			t.Errorf("methods.go names %s, which no service has", m)
		}
	}
	protoregistry.GlobalFiles.RangeFilesByPackage("treaty.v1", func(f protoreflect.FileDescriptor) bool {
		for i := 0; i < f.Services().Len(); i++ {
			s := f.Services().Get(i)
			if !slices.ContainsFunc(served, func(d *grpc.ServiceDesc) bool { return d.ServiceName == string(s.FullName()) }) {
				t.Errorf("service %s is not in the test's list of served services", s.FullName())
			}
		}
		return true
	})
}

// TestMethodTableShape pins the rules that matter most.
func TestMethodTableShape(t *testing.T) {
	for m, want := range map[string]string{
		"/grpc.health.v1.Health/Check":                         "public",
		"/treaty.v1.IssuerService/IssueToken":                  "public",
		"/treaty.v1.IssuerService/ExchangeToken":               "public",
		"/treaty.v1.IssuerService/ListSigningKeys":             "public",
		"/treaty.v1.AccessService/WhoAmI":                      "any",
		"/treaty.v1.DecisionService/Check":                     "pdp-client",
		"/envoy.service.auth.v3.Authorization/Check":           "pdp-client",
		"/treaty.v1.RevocationService/Subscribe":               "subscriber,service,operator,auditor",
		"/treaty.v1.RevocationService/Snapshot":                "subscriber,service,operator,auditor", // a follower's resync
		"/treaty.v1.RevocationService/Publish":                 "service",
		"/treaty.v1.RevocationService/Revoke":                  "operator,service",
		"/treaty.v1.AccessService/CreateIdentity":              "",
		"/treaty.v1.AdminService/Backup":                       "",
		"/treaty.v1.RegistryService/ListClientSecretVerifiers": "service",
	} {
		r := methods[m]
		got := ""
		switch {
		case r.public:
			got = "public"
		case r.anyCaller:
			got = "any"
		default:
			for i, role := range r.roles {
				if i > 0 {
					got += ","
				}
				got += string(role)
			}
		}
		if got != want {
			t.Errorf("%s: %q, want %q", m, got, want)
		}
	}
	// No method names admin: admin may call every method in the table anyway.
	for m, r := range methods {
		if slices.Contains(r.roles, access.RoleAdmin) {
			t.Errorf("%s names admin", m)
		}
	}
}
