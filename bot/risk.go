package bot

import (
	"fmt"
	"slices"

	"mongobot/commands"
	"mongobot/connector"
)

// rootLike roles can do anything on a deployment, or make themselves able to: userAdmin on
// admin and userAdminAnyDatabase can grant any role, dbOwner on admin holds userAdmin there,
// restore writes system.users, __system and directShardOperations bypass the rest.
func rootLike(r connector.Role) bool {
	return r.DB == "admin" && slices.Contains([]string{"root", "__system", "userAdminAnyDatabase", "clusterAdmin",
		"restore", "directShardOperations", "dbOwner", "userAdmin"}, r.Name)
}

// systemDB names the databases whose roles reach the whole deployment or its internals.
func systemDB(db string) bool { return db == "admin" || db == "local" || db == "config" }

// riskOf says why a change is high-risk, or "" when it is not: a role that is root-like or
// lives on admin, local or config; or a target user who is root-like itself (dropping,
// locking or rotating an administrator cuts someone off, or takes over their access). Pure:
// the card warns with it and policy rules may match on it (risk: high).
func riskOf(action string, args map[string]string, st connector.UserState) string {
	roles := []string{args["role"]}
	switch action {
	case commands.CreateReadOnlyUser:
		roles = []string{"read@" + args["db"]} // read on local is the oplog; on admin, the users' hashes
	case commands.Access:
		roles = roleWords(args)
	}
	for _, role := range roles {
		if r, err := connector.ParseRole(role); err == nil && role != "" {
			switch {
			case rootLike(r):
				return fmt.Sprintf("%s can do anything on this deployment (or grant itself anything)", r)
			case systemDB(r.DB):
				return fmt.Sprintf("%s is a role on the %s database, which reaches the whole deployment", r, r.DB)
			}
		}
	}
	if i := slices.IndexFunc(st.Roles, rootLike); i >= 0 {
		return fmt.Sprintf("%s holds %s: it is an administrator of this deployment", target(args), st.Roles[i])
	}
	return ""
}
