package connector

import (
	"fmt"

	"go.mongodb.org/mongo-driver/v2/event"
)

// The oldest server this bot speaks to is the oldest the MongoDB Go driver v2 speaks to:
// MongoDB 4.4, wire version 9 (topology.MinSupportedMongoDBVersion and
// driverutil.MinWireVersion in go.mongodb.org/mongo-driver/v2 v2.10.0). The driver refuses
// an older server at server selection with an untyped error; the connector watches the wire
// versions in the driver's topology description (a ServerMonitor) to say which release it met.
const (
	minWireVersion = 9
	minVersion     = "4.4"
)

// releaseOfWire names the release that introduced a maxWireVersion below 9
// (src/mongo/db/wire_version.h: 3 is 3.0, 4 is 3.2, 5 is 3.4, 6 is 3.6, 7 is 4.0, 8 is 4.2).
func releaseOfWire(w int32) string {
	switch {
	case w >= 3 && w <= 8:
		return []string{"3.0", "3.2", "3.4", "3.6", "4.0", "4.2"}[w-3]
	case w < 3:
		return "2.6 or older"
	}
	return fmt.Sprintf("wire version %d", w)
}

// sawTopology notes, from the driver's latest description of the deployment, whether it
// refuses a server as too old, and that server's wire version. An upgraded server clears it.
func (m *Mongo) sawTopology(d event.TopologyDescription) {
	var w int32
	if d.CompatibilityErr != nil {
		for _, s := range d.Servers {
			if s.MaxWireVersion > 0 && s.MaxWireVersion < minWireVersion && (w == 0 || s.MaxWireVersion < w) {
				w = s.MaxWireVersion
			}
		}
	}
	m.tooOldWire.Store(w)
}

// tooOld is the error for a deployment with a server older than 4.4, or nil.
func (m *Mongo) tooOld() *Error {
	w := m.tooOldWire.Load()
	if w == 0 {
		return nil
	}
	return newErr(ErrTooOld, "", "%s runs MongoDB %s, which is older than %s, the oldest this bot supports (the MongoDB Go driver it uses does not speak to older servers): upgrade the server, or manage its users another way",
		m.name, releaseOfWire(w), minVersion)
}
