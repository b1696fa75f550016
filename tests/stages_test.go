package tests

// A stage is one program of the ladder, as the suite knows it.
type stage struct {
	dir    string // the directory of its main package
	client bool   // 01: the client's rules apply, not the servers'

	// designed maps a property the stage breaks by design to the way it
	// breaks it (the kind its check reports), for the book's Bad Examples.
	// CONTRACT.md lists which rules each may break.
	designed map[string]string
}

// stages is every stage of the ladder, in order.
var stages = []stage{
	{dir: "01-blocking-client", client: true},
	{dir: "02-forking-server"},
}

// properties returns the properties that apply to the stage.
func (st stage) properties() []property {
	if st.client {
		return clientProperties
	}
	return serverProperties
}
