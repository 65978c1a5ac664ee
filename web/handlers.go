package web

import (
	"bytes"
	"encoding/json"
	"image/png"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pquerna/otp"

	"github.com/kluis-nl/kluis/portal"
)

func (s *Server) anon(w http.ResponseWriter, r *http.Request) *req {
	tok, _ := s.session(r)
	return &req{w: w, r: r, s: s, tok: tok, lang: lang(r)}
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	if tok, ok := s.session(r); ok {
		q := s.anon(w, r)
		q.tok = tok
		if q.call(portal.OpWhoami, portal.Call{}).Status == http.StatusOK {
			http.Redirect(w, r, "/", http.StatusSeeOther)
			return
		}
	}
	s.renderLogin(w, r, http.StatusOK, "")
}

func (s *Server) loginPost(w http.ResponseWriter, r *http.Request) {
	q := s.anon(w, r)
	rep := q.call(portal.OpLogin, portal.Call{User: strings.TrimSpace(r.PostFormValue("user")), Password: r.PostFormValue("password")})
	if rep.Status != http.StatusOK {
		s.renderLogin(w, r, rep.Status, rep.Error)
		return
	}
	s.setCookie(w, s.ticket, rep.Ticket, 300)
	http.Redirect(w, r, "/login/second?f="+url.QueryEscape(strings.Join(rep.Factors, ",")), http.StatusSeeOther)
}

type secondData struct {
	TOTP, Passkey bool
}

func factors(r *http.Request) secondData {
	f := r.URL.Query().Get("f")
	d := secondData{TOTP: strings.Contains(f, "totp"), Passkey: strings.Contains(f, "passkey")}
	if !d.TOTP && !d.Passkey {
		d.TOTP = true
	}
	return d
}

func (s *Server) ticketOf(r *http.Request) string {
	c, err := r.Cookie(s.ticket)
	if err != nil {
		return ""
	}
	return c.Value
}

func (s *Server) secondPage(w http.ResponseWriter, r *http.Request) {
	if s.ticketOf(r) == "" {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	s.render(w, r, http.StatusOK, "second", nil, factors(r), "")
}

// loggedIn sets the new session's cookie (the session id changes at
// every login: the daemon issued it just now) and ends the half login.
func (s *Server) loggedIn(w http.ResponseWriter, rep portal.Reply) {
	s.clearCookie(w, s.ticket)
	s.setCookie(w, s.cookie, rep.Session.Token, 0)
}

func (s *Server) loginTOTP(w http.ResponseWriter, r *http.Request) {
	q := s.anon(w, r)
	rep := q.call(portal.OpLoginTOTP, portal.Call{Ticket: s.ticketOf(r), Code: strings.TrimSpace(r.PostFormValue("code"))})
	if rep.Status != http.StatusOK {
		if rep.Status == http.StatusTooManyRequests || strings.Contains(rep.Error, "expired") {
			s.clearCookie(w, s.ticket)
			s.renderLogin(w, r, rep.Status, rep.Error)
			return
		}
		s.render(w, r, rep.Status, "second", nil, factors(r), rep.Error)
		return
	}
	s.loggedIn(w, rep)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Server) loginPasskeyBegin(w http.ResponseWriter, r *http.Request) {
	q := s.anon(w, r)
	jsonReply(w, q.call(portal.OpLoginPasskeyBegin, portal.Call{Ticket: s.ticketOf(r)}), "")
}

func credential(r *http.Request) json.RawMessage {
	c := r.PostFormValue("credential")
	if !json.Valid([]byte(c)) {
		return nil
	}
	return json.RawMessage(c)
}

func (s *Server) loginPasskeyFinish(w http.ResponseWriter, r *http.Request) {
	q := s.anon(w, r)
	rep := q.call(portal.OpLoginPasskeyFinish, portal.Call{Ticket: s.ticketOf(r), Credential: credential(r)})
	if rep.Status == http.StatusOK {
		s.loggedIn(w, rep)
	}
	jsonReply(w, portal.Reply{Status: rep.Status, Error: rep.Error}, "/")
}

func (s *Server) enrolPage(w http.ResponseWriter, r *http.Request) {
	q := s.anon(w, r)
	rep := q.call(portal.OpEnrolInfo, portal.Call{Token: r.PathValue("token")})
	if rep.Status != http.StatusOK {
		s.render(w, r, rep.Status, "error", nil, nil, rep.Error)
		return
	}
	s.render(w, r, http.StatusOK, "enrol", nil, rep.Enrol, "")
}

// enrolQR serves the enrolment's TOTP secret as a QR code: a PNG made
// here (the CSP allows no data: image), only for a live one-time link,
// never cached (ServeHTTP sets no-store).
func (s *Server) enrolQR(w http.ResponseWriter, r *http.Request) {
	q := s.anon(w, r)
	rep := q.call(portal.OpEnrolInfo, portal.Call{Token: r.PathValue("token")})
	if rep.Status != http.StatusOK || rep.Enrol == nil {
		status := rep.Status
		if status < 400 || status > 599 {
			status = http.StatusNotFound
		}
		http.Error(w, "no such enrolment", status)
		return
	}
	k, err := otp.NewKeyFromURL(rep.Enrol.TOTPURI)
	if err != nil {
		s.opts.Log.Error("web: enrolment QR code", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	img, err := k.Image(240, 240)
	var b bytes.Buffer
	if err == nil {
		err = png.Encode(&b, img)
	}
	if err != nil {
		s.opts.Log.Error("web: enrolment QR code", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Write(b.Bytes())
}

func (s *Server) enrolPost(w http.ResponseWriter, r *http.Request) {
	q := s.anon(w, r)
	tok := r.PathValue("token")
	if r.PostFormValue("password") != r.PostFormValue("password2") {
		rep := q.call(portal.OpEnrolInfo, portal.Call{Token: tok})
		s.render(w, r, http.StatusBadRequest, "enrol", nil, rep.Enrol, texts[lang(r)]["password_mismatch"])
		return
	}
	rep := q.call(portal.OpEnrol, portal.Call{Token: tok, Password: r.PostFormValue("password"), Code: strings.TrimSpace(r.PostFormValue("code"))})
	if rep.Status != http.StatusOK {
		info := q.call(portal.OpEnrolInfo, portal.Call{Token: tok})
		if info.Enrol == nil {
			s.render(w, r, rep.Status, "error", nil, nil, rep.Error)
			return
		}
		s.render(w, r, rep.Status, "enrol", nil, info.Enrol, rep.Error)
		return
	}
	s.render(w, r, http.StatusOK, "enrolled", nil, nil, "")
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	q := s.anon(w, r)
	q.call(portal.OpLogout, portal.Call{})
	s.clearCookie(w, s.cookie)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

type homeData struct {
	Tenants  []string
	Requests []portal.RequestView
}

func (s *Server) home(q *req) {
	var d homeData
	if q.sess.Role != portal.RoleAuditor {
		rep := q.call(portal.OpRequests, portal.Call{})
		d.Requests = rep.Requests
	}
	if q.sess.Role == portal.RolePractice || q.sess.Role == portal.RoleAuditor {
		d.Tenants = q.call(portal.OpTenants, portal.Call{}).Tenants
	}
	q.render(http.StatusOK, "home", d, "")
}

func (s *Server) account(q *req) { q.render(http.StatusOK, "account", nil, "") }

func (s *Server) passkeyAddBegin(q *req) {
	jsonReply(q.w, q.call(portal.OpPasskeyAddBegin, portal.Call{}), "")
}

func (s *Server) passkeyAddFinish(q *req) {
	jsonReply(q.w, q.call(portal.OpPasskeyAddFinish, portal.Call{Credential: credential(q.r)}), "/account")
}

type tenantData struct {
	Tenant    string
	Snapshots []portal.Snapshot
	Dossier   *portal.DossierView
	Into      bool
}

func (s *Server) tenant(q *req) {
	t := q.r.PathValue("tenant")
	rep := q.call(portal.OpSnapshots, portal.Call{Tenant: t})
	if rep.Status != http.StatusOK {
		q.fail(rep)
		return
	}
	q.render(http.StatusOK, "tenant", tenantData{Tenant: t, Snapshots: rep.Snapshots}, "")
}

func (s *Server) dossierShow(q *req) {
	t := q.r.PathValue("tenant")
	rep := q.call(portal.OpDossierShow, portal.Call{Tenant: t, Snapshot: q.r.PostFormValue("snapshot"), ID: q.r.PostFormValue("dossier_id")})
	if rep.Dossier != nil && rep.Dossier.Erased {
		// Erased: nothing of it, only the way to ask for an override.
		q.render(http.StatusOK, "dossier", tenantData{Tenant: t, Dossier: rep.Dossier}, rep.Error)
		return
	}
	if rep.Status != http.StatusOK {
		if rep.Status == http.StatusBadRequest {
			snaps := q.call(portal.OpSnapshots, portal.Call{Tenant: t})
			q.render(rep.Status, "tenant", tenantData{Tenant: t, Snapshots: snaps.Snapshots}, rep.Error)
			return
		}
		q.fail(rep)
		return
	}
	q.render(http.StatusOK, "dossier", tenantData{Tenant: t, Dossier: rep.Dossier}, "")
}

func (s *Server) requestCreate(q *req) {
	t := q.r.PathValue("tenant")
	rep := q.call(portal.OpRequestCreate, portal.Call{Tenant: t, Snapshot: q.r.PostFormValue("snapshot"), ID: q.r.PostFormValue("dossier_id"),
		Reason: q.r.PostFormValue("reason"), Delivery: q.r.PostFormValue("delivery"), Kind: q.r.PostFormValue("kind")})
	if rep.Status != http.StatusOK {
		q.fail(rep)
		return
	}
	http.Redirect(q.w, q.r, "/requests/"+rep.Req.ID, http.StatusSeeOther)
}

func (s *Server) requests(q *req) {
	rep := q.call(portal.OpRequests, portal.Call{})
	if rep.Status != http.StatusOK {
		q.fail(rep)
		return
	}
	q.render(http.StatusOK, "requests", rep.Requests, "")
}

type requestData struct {
	Req *portal.RequestView
}

func (s *Server) request(q *req) {
	rep := q.call(portal.OpRequest, portal.Call{Request: q.r.PathValue("id")})
	if rep.Status != http.StatusOK {
		q.fail(rep)
		return
	}
	// The daemon says whether this user may approve it (and checks
	// again when they do).
	q.render(http.StatusOK, "request", requestData{Req: rep.Req}, "")
}

func (s *Server) approveBegin(q *req) {
	jsonReply(q.w, q.call(portal.OpApproveBegin, portal.Call{Request: q.r.PathValue("id")}), "")
}

func (s *Server) approveFinish(q *req) {
	id := q.r.PathValue("id")
	jsonReply(q.w, q.call(portal.OpApproveFinish, portal.Call{Request: id, Credential: credential(q.r)}), "/requests/"+id)
}

func (s *Server) reject(q *req) {
	id := q.r.PathValue("id")
	rep := q.call(portal.OpReject, portal.Call{Request: id})
	if rep.Status != http.StatusOK {
		q.fail(rep)
		return
	}
	http.Redirect(q.w, q.r, "/requests/"+id, http.StatusSeeOther)
}

func (s *Server) restoreInto(q *req) {
	id := q.r.PathValue("id")
	rep := q.call(portal.OpRestoreInto, portal.Call{Request: id})
	if rep.Status != http.StatusOK {
		q.fail(rep)
		return
	}
	q.render(http.StatusOK, "restored", rep.Message, "")
}

func (s *Server) download(q *req) {
	s.stream(q, portal.OpDownload, portal.Call{Session: q.tok, CSRF: q.r.PostFormValue("csrf"), Client: s.client(q.r), Request: q.r.PostFormValue("request"), Token: q.r.PostFormValue("token")})
}

func (s *Server) evidenceExport(q *req) {
	v := q.r.URL.Query()
	s.stream(q, portal.OpEvidenceExport, portal.Call{Session: q.tok, Client: s.client(q.r), Tenant: v.Get("tenant"), From: v.Get("from"), To: v.Get("to")})
}

// stream passes a file from the daemon to the browser as an attachment.
func (s *Server) stream(q *req, op string, c portal.Call) {
	rep, err := s.opts.Client.Stream(q.r.Context(), op, c, func(name string) io.Writer {
		ct := "application/sql; charset=utf-8"
		switch {
		case strings.HasSuffix(name, ".json"):
			ct = "application/json"
		case strings.HasSuffix(name, ".tar.gz"):
			ct = "application/gzip"
		}
		q.w.Header().Set("Content-Type", ct)
		q.w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
		return q.w
	})
	if err != nil {
		// Headers are sent: cut the connection so the browser sees a
		// failed download, not a short file.
		s.opts.Log.Error("web: download broke off", "err", err)
		panic(http.ErrAbortHandler)
	}
	if rep.Status != http.StatusOK {
		q.fail(rep)
	}
}

type evidenceData struct {
	Tenant, From, To string
	Tenants          []string
	E                *portal.EvidenceView
}

func (s *Server) evidence(q *req) {
	v := q.r.URL.Query()
	d := evidenceData{Tenant: v.Get("tenant"), From: strings.TrimSpace(v.Get("from")), To: strings.TrimSpace(v.Get("to"))}
	d.Tenants = q.call(portal.OpTenants, portal.Call{}).Tenants
	// Dates are YYYY-MM-DD whatever the browser's locale (the fields
	// are text, not type=date, whose display follows the locale).
	for _, day := range []string{d.From, d.To} {
		if _, err := time.Parse(time.DateOnly, day); day != "" && err != nil {
			q.render(http.StatusBadRequest, "evidence", d, texts[q.lang]["bad_date"])
			return
		}
	}
	rep := q.call(portal.OpEvidence, portal.Call{Tenant: d.Tenant, From: d.From, To: d.To})
	if rep.Status != http.StatusOK {
		if rep.Status == http.StatusBadRequest {
			q.render(rep.Status, "evidence", d, rep.Error)
			return
		}
		q.fail(rep)
		return
	}
	d.E = rep.Evidence
	q.render(http.StatusOK, "evidence", d, "")
}

func (s *Server) users(q *req) {
	rep := q.call(portal.OpUsers, portal.Call{})
	if rep.Status != http.StatusOK {
		q.fail(rep)
		return
	}
	q.render(http.StatusOK, "users", rep.Users, "")
}

func (s *Server) userReset(q *req) {
	rep := q.call(portal.OpUserResetRequest, portal.Call{User: q.r.PathValue("name"), Reason: q.r.PostFormValue("reason")})
	if rep.Status != http.StatusOK {
		q.fail(rep)
		return
	}
	http.Redirect(q.w, q.r, "/requests/"+rep.Req.ID, http.StatusSeeOther)
}

func (s *Server) retention(q *req) {
	rep := q.call(portal.OpRetention, portal.Call{})
	if rep.Status != http.StatusOK {
		q.fail(rep)
		return
	}
	q.render(http.StatusOK, "retention", rep.Retention, "")
}

// retentionRequest asks for a retention change; the daemon checks it.
func (s *Server) retentionRequest(q *req) {
	c := portal.Call{Tenant: q.r.PostFormValue("tenant"), Reason: q.r.PostFormValue("reason"), ToPolicy: q.r.PostFormValue("to_policy") != ""}
	if !c.ToPolicy {
		var r portal.Retention
		for _, f := range []struct {
			name string
			dst  *int
		}{{"keep_last", &r.KeepLast}, {"keep_daily", &r.KeepDaily}, {"keep_weekly", &r.KeepWeekly}, {"keep_monthly", &r.KeepMonthly}} {
			n, err := strconv.Atoi(strings.TrimSpace(q.r.PostFormValue(f.name)))
			if err != nil || n < 0 {
				q.render(http.StatusBadRequest, "error", nil, f.name+": "+texts[q.lang]["bad_number"])
				return
			}
			*f.dst = n
		}
		c.Retention = &r
	}
	rep := q.call(portal.OpRetentionRequest, c)
	if rep.Status != http.StatusOK {
		q.fail(rep)
		return
	}
	http.Redirect(q.w, q.r, "/requests/"+rep.Req.ID, http.StatusSeeOther)
}
