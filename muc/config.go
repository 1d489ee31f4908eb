package muc

// Config tunes the MUC service. Zero fields take the documented defaults.
type Config struct {
	// MaxBroadcastOccupants bounds presence floods: in a room with more
	// occupants than this, joins and leaves of others are not broadcast, and
	// a joiner gets only its own presence, not the presences of those
	// already in the room. Defaults to 500.
	MaxBroadcastOccupants int
	// DefaultHistory is how many stored messages a join without a
	// <history/> element gets. Defaults to 20; negative sends none.
	DefaultHistory int
	// MaxHistory caps the messages replayed on any join, whatever the
	// client asks for. Defaults to 100.
	MaxHistory int
	// NoCreateByJoin keeps clients from creating rooms by joining them
	// (XEP-0045 §10.1.1): a join to a room that does not exist is then
	// answered <not-allowed/>, and rooms are the group dialogs made over
	// REST. By default a join creates the room's dialog.
	NoCreateByJoin bool
}

func (c Config) withDefaults() Config {
	if c.MaxBroadcastOccupants <= 0 {
		c.MaxBroadcastOccupants = 500
	}
	if c.DefaultHistory == 0 {
		c.DefaultHistory = 20
	}
	if c.DefaultHistory < 0 {
		c.DefaultHistory = 0
	}
	if c.MaxHistory <= 0 {
		c.MaxHistory = 100
	}
	return c
}
