package config

import (
	"crypto/sha256"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// ObjectLock is the S3 Object Lock retention of a location: every object
// is written with Mode and a retain-until date Days after it is written.
type ObjectLock struct {
	// Mode is compliance (nobody can shorten or lift it) or governance (a
	// principal with s3:BypassGovernanceRetention can).
	Mode string `yaml:"mode"`
	// Days is the retention of each object from when it is written; make
	// it at least as long as the oldest snapshot the retention policy
	// keeps (docs/ops.md, "Object Lock").
	Days int `yaml:"days"`
}

// MaxObjectLockDays bounds object_lock.days (ten years).
const MaxObjectLockDays = 3650

var bucketRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// validateLocations checks what is particular to each location type and
// the policy across locations: two distinct sites at least, no two
// locations on the same storage, no credentials shared between locations
// (one stolen key must not reach both copies), no plain HTTP off this
// machine.
func (c *Config) validateLocations(p *Problems) {
	type place struct {
		index                    int
		endpoint, bucket, prefix string
	}
	var places []place
	dirs := map[string]int{}
	keys := map[[32]byte]int{}
	for i, l := range c.Locations {
		path := fmt.Sprintf("locations[%d]", i)
		if l.Type != "s3" {
			for field, set := range map[string]bool{
				"endpoint": l.Endpoint != "", "region": l.Region != "", "bucket": l.Bucket != "", "prefix": l.Prefix != "",
				"path_style": l.PathStyle, "access_key_id_file": l.AccessKeyIDFile != "", "secret_access_key_file": l.SecretAccessKeyFile != "",
				"ca_file": l.CAFile != "", "object_lock": l.ObjectLock != nil,
			} {
				if set {
					p.addf(path+"."+field, "only for a location of type s3")
				}
			}
			if l.Type == "dir" && l.Path != "" {
				d := filepath.Clean(c.Resolve(l.Path))
				if j, dup := dirs[d]; dup {
					p.addf(path+".path", "the same directory as locations[%d]: two locations must be two copies", j)
				}
				dirs[d] = i
			}
			continue
		}
		if l.Path != "" {
			p.addf(path+".path", "not used by an s3 location (give bucket and prefix)")
		}
		switch {
		case l.Bucket == "":
			p.addf(path+".bucket", "required for an s3 location")
		case !bucketRE.MatchString(l.Bucket) || strings.Contains(l.Bucket, ".."):
			p.addf(path+".bucket", "%q is not a valid bucket name (3–63 lower-case letters, digits, '.' and '-')", l.Bucket)
		}
		if strings.HasPrefix(l.Prefix, "/") || strings.Contains(l.Prefix, "//") || strings.Contains("/"+l.Prefix, "/../") || (l.Prefix != "" && !strings.HasSuffix(l.Prefix, "/")) {
			p.addf(path+".prefix", "%q: a relative path ending in '/' (e.g. kluis/), or empty", l.Prefix)
		}
		endpoint := "aws"
		if l.Endpoint != "" {
			u, err := url.Parse(l.Endpoint)
			switch {
			case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
				p.addf(path+".endpoint", "%q: want https://host[:port]", l.Endpoint)
			case u.Scheme == "http" && !isLoopback(u.Hostname()):
				p.addf(path+".endpoint", "%q: plain http to a host that is not this machine would send backups and request signatures unencrypted; use https", l.Endpoint)
			case u.User != nil:
				p.addf(path+".endpoint", "credentials do not belong in the endpoint; use access_key_id_file and secret_access_key_file")
			default:
				endpoint = strings.ToLower(u.Scheme + "://" + u.Host + strings.TrimSuffix(u.Path, "/"))
			}
		}
		places = append(places, place{i, endpoint, l.Bucket, l.Prefix})
		if (l.AccessKeyIDFile == "") != (l.SecretAccessKeyFile == "") {
			p.addf(path, "give both access_key_id_file and secret_access_key_file, or neither (the AWS credential chain)")
		}
		c.checkSecretFile(p, path+".access_key_id_file", l.AccessKeyIDFile)
		c.checkSecretFile(p, path+".secret_access_key_file", l.SecretAccessKeyFile)
		if l.AccessKeyIDFile != "" {
			if b, err := os.ReadFile(c.Resolve(l.AccessKeyIDFile)); err == nil {
				// Compared by hash; the key itself is never printed.
				h := sha256.Sum256([]byte(strings.TrimSpace(string(b))))
				if j, dup := keys[h]; dup {
					p.addf(path+".access_key_id_file", "the same access key as locations[%d]: each location needs its own credentials, so that one stolen key cannot reach both copies", j)
				}
				keys[h] = i
			}
		}
		if l.CAFile != "" {
			if _, err := os.Stat(c.Resolve(l.CAFile)); err != nil {
				p.addf(path+".ca_file", "%v", err)
			}
		}
		if ol := l.ObjectLock; ol != nil {
			if ol.Mode != "compliance" && ol.Mode != "governance" {
				p.addf(path+".object_lock.mode", "%q: want compliance or governance", ol.Mode)
			}
			if ol.Days < 1 || ol.Days > MaxObjectLockDays {
				p.addf(path+".object_lock.days", "%d: want 1 to %d", ol.Days, MaxObjectLockDays)
			}
		}
	}
	for a := range places {
		for b := range a {
			x, y := places[a], places[b]
			if x.endpoint == y.endpoint && x.bucket == y.bucket && (strings.HasPrefix(x.prefix, y.prefix) || strings.HasPrefix(y.prefix, x.prefix)) {
				p.addf(fmt.Sprintf("locations[%d].bucket", x.index), "the same endpoint and bucket as locations[%d] (with overlapping prefixes): two locations must be two copies", y.index)
			}
		}
	}
	// Always two sites, whatever policy.required_copies says (when it is
	// 2 or more, checkResidency already reports too few).
	if c.Policy.RequiredCopies < 2 && len(c.Locations) > 0 {
		sites := map[string]bool{}
		for _, l := range c.Locations {
			if l.Site != "" && strings.EqualFold(l.Country, c.Policy.Residency.Country) {
				sites[strings.ToLower(l.Site)] = true
			}
		}
		if len(sites) < 2 {
			p.addf("locations", "%s in %s: at least two are required (two independent off-site copies)", plural(len(sites), "distinct site", "distinct sites"), c.Policy.Residency.Country)
		}
	}
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
