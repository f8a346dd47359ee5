package mongotest

// Difference is one known way the emulator or FerretDB answers a command differently from
// MongoDB. The differential suite (connector/differential_test.go) fails on any difference
// not listed here, and on any entry that no longer shows.
type Difference struct {
	// Scenario is the differential scenario's name; Field the reply path that differs
	// ("1.code", "0.users.0.roles"), covering the paths under it.
	Scenario, Field string
	// Server is who departs from MongoDB: "emulator", "ferretdb", or both.
	Server string
	// Reason says why, with the source for MongoDB's behaviour.
	Reason string
}

// Differences is the table. It is the one place that says where the emulator stands in for a
// real server and where FerretDB falls short of one.
var Differences = []Difference{
	{"createUser with a role", "0", "ferretdb", "FerretDB v1.24.2 has no roles: createUser with a non-empty roles array answers 238 NotImplemented (its handler/msg_createuser.go; reference §8)"},
	{"createUser with a role", "1", "ferretdb", "so the user does not exist there"},
	{"createUser with customData", "0", "ferretdb", "FerretDB answers 238 NotImplemented for a non-empty customData (reference §8)"},
	{"createUser with an empty restriction document", "0", "ferretdb", "FerretDB ignores authenticationRestrictions; MongoDB refuses {} with 162 CollectionIsEmpty (address_restriction.cpp, parseAddressRestrictionSet)"},
	{"createUser with an unknown field", "0", "ferretdb", "FerretDB ignores unknown fields; MongoDB's user commands are strict IDL commands: 40415 IDLUnknownField (user_management_commands.idl)"},
	{"grant to a missing user a missing role", "0", "ferretdb", "FerretDB has no grantRolesToUser (59); MongoDB reads the user before the roles, so 11 comes before 31 (user_management_commands.cpp, typedRun: getCurrentUserRoles, then rolesExist)"},
	{"grant to a missing user a missing role", "1", "ferretdb", "FerretDB has no revokeRolesFromUser (59); 11 before 31 as for grant"},
	{"invalidateUserCache", "0", "ferretdb", "FerretDB has no invalidateUserCache (59); MongoDB has it on mongod and mongos, needing invalidateUserCache on the cluster"},
	{"killAllSessions", "0", "ferretdb", "FerretDB has no killAllSessions (59): the connector refuses --kill-sessions and lock there"},
	{"killAllSessions", "1", "ferretdb", "FerretDB has no killAllSessions (59); MongoDB refuses writeConcern on it with 72 InvalidOptions (kill_all_sessions_command.cpp: supportsWriteConcern false)"},
	{"usersInfo document shape", "3.users.0.authenticationRestrictions", "ferretdb", "FerretDB ignores showAuthenticationRestrictions (reference §8)"},
	{"usersInfo document shape", "3.users.0.inheritedAuthenticationRestrictions", "ferretdb", "FerretDB ignores showAuthenticationRestrictions (reference §8)"},
	{"usersInfo of everyone with details", "0", "ferretdb", "FerretDB ignores showPrivileges; MongoDB refuses details for a non-exact query with 20 IllegalOperation (user_management_commands.cpp, usersInfo typedRun)"},
	{"usersInfo of everyone with details", "1", "ferretdb", "FerretDB ignores showAuthenticationRestrictions; MongoDB answers 20 IllegalOperation"},
	{"*", "*.users.0.$keys", "ferretdb", "FerretDB orders a usersInfo document _id, user, db, roles, userId, mechanisms; MongoDB _id, userId, user, db, roles, mechanisms (usersInfo examples in docs usersInfo.txt; the emulator follows them)"},
	{"connectionStatus with privileges", "0.authInfo.$keys", "ferretdb", "FerretDB ignores showPrivileges and has no authenticatedUserPrivileges (reference §8)"},
	{"roles are a set", "1", "ferretdb", "FerretDB has no grantRolesToUser (59); MongoDB grants a role listed twice once (user_management_commands_lib.js)"},
	{"roles are a set", "2", "ferretdb", "FerretDB has no revokeRolesFromUser (59); MongoDB revokes a role not held as a no-op (…_edge_cases.js)"},
	{"roles are a set", "3", "ferretdb", "FerretDB has no grantRolesToUser (59); MongoDB answers 31 RoleNotFound"},
	{"roles are a set", "4", "ferretdb", "so FerretDB's user has no roles"},
	{"restrictions are kept as given", "1", "ferretdb", "FerretDB ignores authenticationRestrictions and showAuthenticationRestrictions; MongoDB stores the documents as given, clientSource: [] included"},
	{"restrictions are kept as given", "2", "ferretdb", "FerretDB does not enforce restrictions; in MongoDB clientSource: [] matches no address (address_restriction.h), so the login fails"},
	{"restrictions are kept as given", "3", "ferretdb", "FerretDB answers 2 BadValue to an updateUser with only authenticationRestrictions (nothing it supports to update)"},
	{"restrictions are kept as given", "4", "ferretdb", "FerretDB ignores showAuthenticationRestrictions; MongoDB shows authenticationRestrictions: [] and inheritedAuthenticationRestrictions: [] (authentication_restrictions_role.js)"},
	{"usersInfo with writeConcern", "0", "ferretdb", "FerretDB ignores writeConcern; MongoDB refuses it on a command that does not write: 72 InvalidOptions (service_entry_point_common.cpp)"},
}
