package authn

import (
	"sync"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/treaty-dev/treaty/access"
)

// maxActor is the most bytes an actor may hold in the registry's and the revoker's records.
const maxActor = 256

// actorFields caches, per message type, its top-level string field named "actor" (or nil), so
// each type is looked at once.
var actorFields sync.Map // protoreflect.FullName -> protoreflect.FieldDescriptor (nil: none)

func actorField(d protoreflect.MessageDescriptor) protoreflect.FieldDescriptor {
	if f, ok := actorFields.Load(d.FullName()); ok {
		fd, _ := f.(protoreflect.FieldDescriptor)
		return fd
	}
	fd := d.Fields().ByName("actor")
	if fd != nil && (fd.Kind() != protoreflect.StringKind || fd.Cardinality() == protoreflect.Repeated) {
		fd = nil
	}
	actorFields.Store(d.FullName(), fd)
	return fd
}

// setActor records the authenticated caller in m's actor field, if it has one (see the package
// doc).
func setActor(m any, c access.Caller) {
	// A message with an actor field has its generated getter; most requests, and the decision
	// point's on every call, have none, and this assertion is far cheaper than the lookup below.
	if _, ok := m.(interface{ GetActor() string }); !ok {
		return
	}
	pm, ok := m.(proto.Message)
	if !ok {
		return
	}
	r := pm.ProtoReflect()
	fd := actorField(r.Descriptor())
	if fd == nil {
		return
	}
	declared := r.Get(fd).String()
	if relays(c) && declared != "" {
		return
	}
	r.Set(fd, protoreflect.ValueOfString(actorOf(c.Name, declared)))
}

// actorOf is the actor recorded for caller name, who declared itself declared.
func actorOf(name, declared string) string {
	if declared == "" || declared == name {
		return name
	}
	s := name + "/" + declared
	if len(s) <= maxActor {
		return s
	}
	s = s[:maxActor]
	for !utf8.ValidString(s) && len(s) > len(name) {
		s = s[:len(s)-1] // do not cut a character in two
	}
	return s
}
