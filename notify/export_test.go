package notify

// OffboardingType exposes the audit action mapping to the tests.
var OffboardingType = offboardingType
