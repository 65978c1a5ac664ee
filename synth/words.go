package synth

// Word lists the generator draws from. All names are common Dutch (or
// common in the Netherlands) first names, surnames and place names; their
// combinations are arbitrary.

var firstNames = []string{
	"Anouk", "Daan", "Sem", "Fenna", "Eline", "Bram", "Jan-Willem", "Sanne",
	"Lotte", "Thijs", "Joris", "Maartje", "Pieter", "Femke", "Ruben", "Noor",
	"Mohammed", "Fatima", "Aïcha", "Zoë", "Chloë", "Noël", "Ngọc", "Thị Lan",
	"Ayşe", "Emre", "Kees", "Wilhelmina", "Henk", "Ingrid", "Sven", "Ilse",
	"Youssef", "Priya", "Marloes", "Gerrit", "Hendrika", "Jeroen", "Inge", "Søren",
	"Beatriz", "Oğuz", "Łukasz", "Renée", "Anneke", "Bjørn", "Lieke", "Sjoerd",
}

var lastNames = []string{
	"de Vries", "Jansen", "de Jong", "van den Berg", "Bakker", "Visser", "Smit",
	"Meijer", "de Boer", "Mulder", "de Groot", "Bos", "Vos", "Peters", "Hendriks",
	"van Leeuwen", "Dekker", "Brouwer", "de Wit", "Dijkstra", "van 't Hek",
	"Çelik", "Yılmaz", "Müller", "Nguyễn", "Öztürk", "El Idrissi", "O'Brien",
	"Kowalczyk", "Şahin", "van der Meer", "Boukhari", "Tran", "ter Horst",
	"in 't Veld", "Groeneveld", "Ramdin", "Hoekstra", "Zwart", "Ślusarczyk",
}

var streets = []string{
	"Hoofdstraat", "Kerkstraat", "Dorpsstraat", "Molenweg", "Stationsplein",
	"Laan van Meerdervoort", "2e Hugo de Grootstraat", "Burgemeester van Reenensingel",
	"Oudegracht", "Coolsingel", "Prinses Irenestraat", "Julianalaan", "Schoolstraat",
	"Wilhelminapark", "Van 't Hoffstraat", "Rue de Liège", "Ĳsselkade", "Grote Markt",
	"Zandweg", "Sint-Jansstraat",
}

var cities = []string{
	"Amsterdam", "Rotterdam", "Den Haag", "Utrecht", "Eindhoven", "Groningen",
	"Tilburg", "Almere", "Breda", "Nijmegen", "'s-Hertogenbosch", "Leeuwarden",
	"Zwolle", "Maastricht", "Ede", "IJmuiden", "Súdwest-Fryslân", "Enschede",
	"Haarlem", "Apeldoorn",
}

var houseSuffixes = []string{"A", "B", "bis", "2-hoog", "zw", "III"}

var staffRoles = []string{
	"huisarts", "praktijkondersteuner", "psycholoog", "fysiotherapeut",
	"doktersassistent", "verpleegkundige",
}

var appointmentStatuses = []string{"voltooid", "voltooid", "voltooid", "voltooid", "voltooid", "voltooid", "afgezegd", "niet verschenen"}

// measurementKinds and the range of their values; decimals < 0 keeps full
// double precision (a computed ratio).
var measurementKinds = []struct {
	name     string
	lo, hi   float64
	decimals int
}{
	{"gewicht (kg)", 45, 120, 1},
	{"lengte (cm)", 150, 200, 0},
	{"bloeddruk systolisch", 95, 175, 0},
	{"bloeddruk diastolisch", 55, 105, 0},
	{"hartslag", 48, 110, 0},
	{"glucose (mmol/l)", 3.8, 12.5, 1},
	{"temperatuur (°C)", 35.8, 39.6, 1},
	{"PHQ-9", 0, 27, 0},
	{"Δ gewicht (kg)", -4, 4, 1},
	{"eGFR-ratio", 0.2, 2.5, -1},
}

var invoiceLineDescriptions = []string{
	"Consult huisarts (regulier, 5-20 min)",
	"Consult huisarts (lang, > 20 min)",
	"Telefonisch consult",
	"Fysiotherapie — zitting",
	"Eigen bijdrage",
	"Ggz-behandeling; \"intake\"",
	"Verrichting: hechten wond",
	"Materiaalkosten (verband, tape)",
	"Visite buiten werktijd 's avonds",
	"Psychologische zorg — 45 min",
}

var auditActions = []string{
	"dossier ingezien", "inloggen", "afspraak gewijzigd", "export naar PDF",
	"verwijsbrief verstuurd", "medicatie gecontroleerd",
}

var noteTexts = []string{
	"Cliënt belt terug over uitslag.",
	"Let op: tolk nodig (Turks).",
	"SELECT * FROM clients; -- geen injectie, gewoon een notitie",
	"Voorkeur voor afspraken \"na 15:00\".",
	"Sleutelkluis code wijzigt per 1/3 — zie map 'Thuiszorg'.",
	"Allergie: penicilline ⚠️",
	"Tab\tgescheiden\tnotitie",
	"Rapport in C:\\Nieuw\\map\\brief.docx",
}

var tabColumnValues = []string{"ja", "nee", "onbekend", "n.v.t.", "😀"}

var attachmentKinds = []struct{ name, ext, mime, magic string }{
	{"verwijsbrief", "pdf", "application/pdf", "%PDF-1.4\n"},
	{"foto wond", "jpg", "image/jpeg", "\xff\xd8\xff\xe0\x00\x10JFIF\x00"},
	{"uitslag lab—%d", "txt", "text/plain; charset=utf-8", "Uitslag\r\n"},
	{"scan (%d)", "png", "image/png", "\x89PNG\r\n\x1a\n"},
	{"ECG", "bin", "application/octet-stream", "\x00\x00\x00\x00"},
}

// reportSentences make up report bodies, together with reportOddities.
var reportSentences = []string{
	"Cliënt komt op controle.",
	"Klachten zijn sinds vorige week afgenomen.",
	"Bloeddruk gemeten, zie metingen.",
	"Slaapt slecht, piekert veel over werk.",
	"Oefeningen voor de onderrug besproken en voorgedaan.",
	"Medicatie ongewijzigd voortzetten.",
	"Verwijzing naar de fysiotherapeut meegegeven.",
	"Geen koorts, wel vermoeid.",
	"Partner is bij het gesprek aanwezig.",
	"Wond geneest goed, hechtingen over 7 dagen verwijderen.",
	"Cliënt geeft aan dat het \"wel gaat\".",
	"Afspraak over twee weken, eerder bellen bij verslechtering.",
	"Leefstijladvies gegeven: bewegen, minder suiker, niet roken.",
	"Doel voor komende periode: 3× per week wandelen.",
	"Pijnscore 6/10 in rust, 8/10 bij belasting.",
	"Huisbezoek afgelegd; de woning is netjes en veilig.",
	"Zorgen over geheugen, MMSE afgenomen: 26/30.",
	"Gesprek in het Engels gevoerd op verzoek van cliënt.",
}

var reportOddities = []string{
	"\t", "\n", "\r\n", "\n\n", "\\", "\\\\", "\"", "'", "''", "😀", "🩺", "❤️",
	"→", "€ 12,50", "“aanhalingstekens”", "C:\\Nieuw\\map", "\\N", "\n\\.\n",
	"100%", "a_b", "; DROP TABLE clients; --", "$$", "`", "<b>vet</b>", "ĳ",
}
