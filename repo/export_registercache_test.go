package repo

// OpenRegisterRecordForTest opens a sealed register record of r's tenant
// ("" when it does not open).
func OpenRegisterRecordForTest(r *Repo, sealed []byte) string {
	p, err := r.meta.open(adRegister, sealed)
	if err != nil {
		return ""
	}
	return string(p)
}
