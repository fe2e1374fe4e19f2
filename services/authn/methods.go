package authn

import (
	"strings"

	"github.com/treaty-dev/treaty/access"
)

// rule is who may call one method.
type rule struct {
	// public methods need no credential: probes, and the issuer's endpoints partner workloads
	// call with their own signed assertions.
	public bool
	// anyCaller methods need a credential but no particular role.
	anyCaller bool
	// roles may call the method; admin always may.
	roles []access.Role
	// allowedBy names the roles that may, for PERMISSION_DENIED messages.
	allowedBy string
}

func allow(roles ...access.Role) rule { return rule{roles: roles} }

var (
	public    = rule{public: true}
	anyCaller = rule{anyCaller: true}

	adminOnly = allow()
	// reads: the inventory, reports, the audit trail, decisions.
	reads = allow(access.RoleOperator, access.RoleAuditor)
	// readsAndPeers are reads Treaty's own services also make of one another.
	readsAndPeers = allow(access.RoleOperator, access.RoleAuditor, access.RoleService)
	// kill is the kill switch and lifecycle holds.
	kill = allow(access.RoleOperator)
	// peers are calls only Treaty's own services make.
	peers    = allow(access.RoleService)
	decide   = allow(access.RolePDPClient)
	auditors = allow(access.RoleAuditor)
	// follow is following the revocation feed: PDPs, the issuer, the SSF transmitter and
	// gateways; operators and auditors may watch it.
	follow = allow(access.RoleSubscriber, access.RoleService, access.RoleOperator, access.RoleAuditor)
)

// methods is who may call each method Treaty serves, by full gRPC method name. It is the one
// place access is decided: a method missing here is refused to every caller (fail closed), and
// TestEveryMethodHasARule fails until it is added.
//
// Role service is what Treaty's services hold when they call each other (see the client
// adapters: registrysvc.NewDirectory, pdpsvc.NewAuthorizer, issuersvc.NewCredentialLookup,
// NewInventory, NewCredentialInventory, NewUsageSink, NewCredentialSource,
// revokersvc.NewPublisher, NewSource, NewCredentialRevoker, reportsvc.RevocationsFromRevoker,
// oauthhttp.RevocationClient).
var methods = map[string]rule{
	// Health probes need no credential; the list of every service's status does.
	"/grpc.health.v1.Health/Check": public,
	"/grpc.health.v1.Health/Watch": public,
	"/grpc.health.v1.Health/List":  anyCaller,
	// Reflection shows the API, which is public anyway, but not to anonymous callers.
	"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      anyCaller,
	"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": anyCaller,
	// Envoy's external authorization is a decision.
	"/envoy.service.auth.v3.Authorization/Check": decide,

	"/treaty.v1.AccessService/CreateIdentity": adminOnly,
	"/treaty.v1.AccessService/GetIdentity":    adminOnly,
	"/treaty.v1.AccessService/ListIdentities": adminOnly,
	"/treaty.v1.AccessService/DeleteIdentity": adminOnly,
	"/treaty.v1.AccessService/RotateToken":    adminOnly,
	"/treaty.v1.AccessService/WhoAmI":         anyCaller,
	"/treaty.v1.AccessService/ListRefusals":   auditors,

	"/treaty.v1.AdminService/Backup": adminOnly,

	"/treaty.v1.AuditService/ListAuditRecords": reads,
	"/treaty.v1.AuditService/ExportAudit":      reads,
	"/treaty.v1.AuditService/VerifyAudit":      reads,

	"/treaty.v1.DecisionService/Check":         decide,
	"/treaty.v1.DecisionService/CheckBatch":    decide,
	"/treaty.v1.DecisionService/CheckIssuance": peers, // the issuer asks a remote PDP

	"/treaty.v1.DecisionLogService/ListDecisions": reads,
	"/treaty.v1.DecisionLogService/TailDecisions": reads,

	"/treaty.v1.InventoryService/ImportInventory": adminOnly,
	"/treaty.v1.InventoryService/ExportInventory": reads,
	"/treaty.v1.InventoryService/RunOffboarding":  adminOnly,
	"/treaty.v1.InventoryService/GetOffboarding":  reads,

	// A partner's workload authenticates itself with its signed assertion (or its subject token);
	// the issuer's identifier and public keys are published.
	"/treaty.v1.IssuerService/IssueToken":      public,
	"/treaty.v1.IssuerService/ExchangeToken":   public,
	"/treaty.v1.IssuerService/GetIssuer":       public,
	"/treaty.v1.IssuerService/ListSigningKeys": public,
	// The revoker looks credentials up and counts them for blast radii; the registry lists them
	// for offboarding and asks for workloads' last use; posture summarizes them.
	"/treaty.v1.IssuerService/GetCredential":                 readsAndPeers,
	"/treaty.v1.IssuerService/ListCredentials":               readsAndPeers,
	"/treaty.v1.IssuerService/CountLiveCredentials":          readsAndPeers,
	"/treaty.v1.IssuerService/CountLiveCredentialsByPartner": reads,
	"/treaty.v1.IssuerService/SummarizeCredentials":          readsAndPeers,
	"/treaty.v1.IssuerService/GetWorkloadUsage":              readsAndPeers,
	"/treaty.v1.IssuerService/ReportUsage":                   peers, // PDPs report what they allowed

	"/treaty.v1.NotifyService/ListDeliveries":  reads,
	"/treaty.v1.NotifyService/SendTest":        kill,
	"/treaty.v1.NotifyService/RetryDeliveries": kill,

	"/treaty.v1.RegistryService/CreatePartner":         adminOnly,
	"/treaty.v1.RegistryService/ApprovePartner":        adminOnly,
	"/treaty.v1.RegistryService/ActivatePartner":       adminOnly,
	"/treaty.v1.RegistryService/ReactivatePartner":     kill,
	"/treaty.v1.RegistryService/UpdatePartner":         adminOnly,
	"/treaty.v1.RegistryService/GetPartner":            readsAndPeers, // the issuer's directory
	"/treaty.v1.RegistryService/ListPartners":          reads,
	"/treaty.v1.RegistryService/SuspendPartner":        kill,
	"/treaty.v1.RegistryService/OffboardPartner":       adminOnly,
	"/treaty.v1.RegistryService/CreateIntegration":     adminOnly,
	"/treaty.v1.RegistryService/ApproveIntegration":    adminOnly,
	"/treaty.v1.RegistryService/ActivateIntegration":   adminOnly,
	"/treaty.v1.RegistryService/SuspendIntegration":    kill,
	"/treaty.v1.RegistryService/ReactivateIntegration": kill,
	"/treaty.v1.RegistryService/UpdateIntegration":     adminOnly,
	"/treaty.v1.RegistryService/RecertifyIntegration":  adminOnly,
	"/treaty.v1.RegistryService/RetireIntegration":     adminOnly,
	"/treaty.v1.RegistryService/GetIntegration":        readsAndPeers, // the issuer's directory
	"/treaty.v1.RegistryService/ListIntegrations":      reads,
	"/treaty.v1.RegistryService/CreateWorkload":        adminOnly,
	"/treaty.v1.RegistryService/RetireWorkload":        adminOnly,
	"/treaty.v1.RegistryService/GetWorkload":           readsAndPeers, // the issuer's directory
	"/treaty.v1.RegistryService/ListWorkloads":         reads,
	"/treaty.v1.RegistryService/AddWorkloadKey":        adminOnly,
	"/treaty.v1.RegistryService/RemoveWorkloadKey":     adminOnly,
	"/treaty.v1.RegistryService/CreateClientSecret":    adminOnly,
	"/treaty.v1.RegistryService/ListClientSecrets":     reads,
	"/treaty.v1.RegistryService/RevokeClientSecret":    kill,
	// Secret verifiers are for the issuer alone (and admins).
	"/treaty.v1.RegistryService/ListClientSecretVerifiers": peers,
	"/treaty.v1.RegistryService/PutPolicy":                 adminOnly,
	"/treaty.v1.RegistryService/GetPolicy":                 reads,
	"/treaty.v1.RegistryService/ListPolicies":              reads,

	"/treaty.v1.ReportService/GetPosture":          reads,
	"/treaty.v1.ReportService/GetInventoryReport":  reads,
	"/treaty.v1.ReportService/GetComplianceReport": reads,

	// Offboarding revokes through the revoker, and so does the OAuth revocation endpoint.
	"/treaty.v1.RevocationService/Revoke":    allow(access.RoleOperator, access.RoleService),
	"/treaty.v1.RevocationService/Restore":   kill,
	"/treaty.v1.RevocationService/RevokeAll": kill,
	// The outbox relays of the registry and the issuer publish their changes.
	"/treaty.v1.RevocationService/Publish": peers,
	// A follower that fell behind the retained events (OUT_OF_RANGE) or saw a new epoch resyncs
	// from a Snapshot (see package subscriber): whoever may follow may take one.
	"/treaty.v1.RevocationService/Subscribe": follow,
	"/treaty.v1.RevocationService/Snapshot":  follow,
}

func init() {
	for name, r := range methods {
		if r.public || r.anyCaller {
			continue
		}
		names := []string{string(access.RoleAdmin)}
		for _, role := range r.roles {
			names = append(names, string(role))
		}
		switch len(names) {
		case 1:
			r.allowedBy = "the role " + names[0]
		default:
			r.allowedBy = "one of the roles " + strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
		}
		methods[name] = r
	}
}
