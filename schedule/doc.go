// Package schedule decides when jobs run: cron specs (robfig/cron/v3) and
// daily slots spread over a backup window, evaluated in the appliance's
// time zone; a concurrency limit; never two jobs of one tenant at once;
// retries with exponential backoff; catch-up after downtime; and a clean
// shutdown with a grace period. Time comes from an injected Clock, so tests
// jump days in microseconds.
//
// Vocabulary: a Job is a named, repeating piece of work for one tenant
// (its Kind says what, e.g. "backup"); a Spec says when it is due; a slot
// is one due time; catch-up runs a job at start when it missed its last
// slot. The package knows no formats, repositories or databases: a job is
// a function.
package schedule
