package scanner

// Default returns every scanner and installer RedFlag has, in the SPEC §7
// order; each one reports itself unavailable where its tool is absent.
func Default(r Runner, o Options) ([]Scanner, []Installer) {
	type both interface {
		Scanner
		Installer
	}
	all := []both{NewAPT(r, o), NewDNF(r, o), NewPacman(r, o), NewAUR(r, o), NewSnap(r, o), NewFlatpak(r, o),
		NewHomebrew(r, o), NewWinget(r, o), NewWindowsUpdate(r, o), NewDocker(r, o)}
	scs := make([]Scanner, 0, len(all))
	ins := make([]Installer, 0, len(all))
	for _, b := range all {
		scs = append(scs, b)
		ins = append(ins, b)
	}
	return scs, ins
}
