// Package acl is klite's ACL model and authorizer, with Apache Kafka's
// semantics (the StandardAuthorizer of KRaft clusters):
//
//   - A binding allows or denies one principal ("User:alice", or "User:*"
//     for every user), from one host (an IP, or "*"), one operation on the
//     resources of one pattern: a literal name ("*" is every resource of the
//     type) or a prefix.
//   - Deny wins: any matching DENY refuses, whatever allows.
//   - Implied operations: an ALLOW of READ, WRITE, DELETE or ALTER allows
//     DESCRIBE; ALTER_CONFIGS allows DESCRIBE_CONFIGS; ALL allows and denies
//     every operation. A DENY refuses only its own operation (or ALL).
//   - Super users are allowed everything. A resource that no binding at all
//     matches is open when AllowIfNoACL is set (Kafka's
//     allow.everyone.if.no.acl.found), closed otherwise.
//
// Filters (DescribeAcls, DeleteAcls) follow Kafka's AclBindingFilter: ANY
// fields match everything, a nil name/principal/host matches any, pattern
// type ANY matches every pattern with exactly the given name, and MATCH
// matches the patterns that would apply to the given name (the literal
// name, the literal "*" and every prefix of it).
//
// The package knows no wire format and no storage: the numeric values of its
// enums are Kafka's, so callers convert with a cast.
package acl

import (
	"errors"
	"fmt"
	"strings"
)

// ResourceType is Kafka's resource type (its wire value).
type ResourceType int8

// Kafka's resource types.
const (
	ResourceUnknown         ResourceType = 0
	ResourceAny             ResourceType = 1 // filters only
	ResourceTopic           ResourceType = 2
	ResourceGroup           ResourceType = 3
	ResourceCluster         ResourceType = 4
	ResourceTransactionalID ResourceType = 5
	ResourceDelegationToken ResourceType = 6
	ResourceUser            ResourceType = 7

	numResourceTypes = 8
)

// ClusterName is the only name of the cluster resource.
const ClusterName = "kafka-cluster"

// Wildcard is the literal resource name and the host that match all.
const Wildcard = "*"

// WildcardPrincipal matches every user.
const WildcardPrincipal = "User:*"

// PatternType is how a binding's resource name matches (Kafka's wire value).
type PatternType int8

// Kafka's pattern types.
const (
	PatternUnknown  PatternType = 0
	PatternAny      PatternType = 1 // filters only
	PatternMatch    PatternType = 2 // filters only
	PatternLiteral  PatternType = 3
	PatternPrefixed PatternType = 4
)

// Operation is Kafka's ACL operation (its wire value).
type Operation int8

// Kafka's operations.
const (
	OpUnknown         Operation = 0
	OpAny             Operation = 1 // filters only
	OpAll             Operation = 2
	OpRead            Operation = 3
	OpWrite           Operation = 4
	OpCreate          Operation = 5
	OpDelete          Operation = 6
	OpAlter           Operation = 7
	OpDescribe        Operation = 8
	OpClusterAction   Operation = 9
	OpDescribeConfigs Operation = 10
	OpAlterConfigs    Operation = 11
	OpIdempotentWrite Operation = 12
	OpCreateTokens    Operation = 13
	OpDescribeTokens  Operation = 14

	maxOperation = OpDescribeTokens
)

// Permission is allow or deny (Kafka's wire value).
type Permission int8

// Kafka's permission types.
const (
	PermissionUnknown Permission = 0
	PermissionAny     Permission = 1 // filters only
	PermissionDeny    Permission = 2
	PermissionAllow   Permission = 3
)

// Binding is one ACL: a resource pattern and an access control entry.
// It is comparable, and two equal bindings are the same ACL.
type Binding struct {
	ResourceType ResourceType
	Name         string
	Pattern      PatternType
	Principal    string
	Host         string
	Operation    Operation
	Permission   Permission
}

// ErrInvalid is returned for a binding or filter Kafka would refuse
// (INVALID_REQUEST on the wire).
var ErrInvalid = errors.New("acl: invalid")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// Validate reports whether b may be created.
func (b Binding) Validate() error {
	switch {
	case b.ResourceType < ResourceTopic || b.ResourceType >= numResourceTypes:
		return invalid("resource type %d", b.ResourceType)
	case b.Pattern != PatternLiteral && b.Pattern != PatternPrefixed:
		return invalid("pattern type %d", b.Pattern)
	case b.Operation < OpAll || b.Operation > maxOperation:
		return invalid("operation %d", b.Operation)
	case b.Permission != PermissionAllow && b.Permission != PermissionDeny:
		return invalid("permission type %d", b.Permission)
	case b.Name == "":
		return invalid("empty resource name")
	case b.ResourceType == ResourceCluster && b.Name != ClusterName:
		return invalid("the only valid name for the CLUSTER resource is %s", ClusterName)
	case !validPrincipal(b.Principal):
		return invalid("principal %q is not Type:Name", b.Principal)
	case b.Host == "":
		return invalid("empty host")
	}
	return nil
}

// validPrincipal: Kafka parses principals as "Type:Name", both non-empty.
func validPrincipal(p string) bool {
	i := strings.IndexByte(p, ':')
	return i > 0 && i < len(p)-1
}

// Filter selects bindings (DescribeAcls, DeleteAcls). A nil Name,
// Principal or Host matches any value; the ANY values of the enums match
// any value.
type Filter struct {
	ResourceType ResourceType
	Name         *string
	Pattern      PatternType
	Principal    *string
	Host         *string
	Operation    Operation
	Permission   Permission
}

// Validate reports whether f is a filter Kafka accepts.
func (f Filter) Validate() error {
	switch {
	case f.ResourceType < ResourceAny || f.ResourceType >= numResourceTypes:
		return invalid("resource type %d", f.ResourceType)
	case f.Pattern < PatternAny || f.Pattern > PatternPrefixed:
		return invalid("pattern type %d", f.Pattern)
	case f.Operation < OpAny || f.Operation > maxOperation:
		return invalid("operation %d", f.Operation)
	case f.Permission < PermissionAny || f.Permission > PermissionAllow:
		return invalid("permission type %d", f.Permission)
	}
	return nil
}

// Matches reports whether b is selected by f.
func (f Filter) Matches(b Binding) bool {
	if f.ResourceType != ResourceAny && f.ResourceType != b.ResourceType {
		return false
	}
	if !f.matchesPattern(b) {
		return false
	}
	if f.Principal != nil && *f.Principal != b.Principal {
		return false
	}
	if f.Host != nil && *f.Host != b.Host {
		return false
	}
	if f.Operation != OpAny && f.Operation != b.Operation {
		return false
	}
	return f.Permission == PermissionAny || f.Permission == b.Permission
}

func (f Filter) matchesPattern(b Binding) bool {
	if f.Pattern != PatternAny && f.Pattern != PatternMatch && f.Pattern != b.Pattern {
		return false
	}
	if f.Name == nil {
		return true
	}
	name := *f.Name
	if f.Pattern != PatternMatch {
		return name == b.Name
	}
	switch b.Pattern {
	case PatternLiteral:
		return b.Name == name || b.Name == Wildcard
	case PatternPrefixed:
		return strings.HasPrefix(name, b.Name)
	}
	return false
}

// allows reports whether an ALLOW of granted allows op.
func allows(granted, op Operation) bool {
	switch {
	case granted == op || granted == OpAll:
		return true
	case op == OpDescribe:
		return granted == OpRead || granted == OpWrite || granted == OpDelete || granted == OpAlter
	case op == OpDescribeConfigs:
		return granted == OpAlterConfigs
	}
	return false
}

// denies reports whether a DENY of denied refuses op.
func denies(denied, op Operation) bool { return denied == op || denied == OpAll }
