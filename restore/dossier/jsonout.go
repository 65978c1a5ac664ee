package dossier

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/kluis-nl/kluis/source"
)

// JSONWriter is a Sink writing one JSON document:
//
//	{"dossier": {...header...}, "tables": [{"table": NAME, "rows": [{COL: VALUE, …}, …]}, …]}
//
// PostgreSQL values are the strings PostgreSQL prints (COPY text; bytea as
// "\x…"), NULL is null. SQLite and MariaDB (kluis-row-v1) integers and
// floats are JSON numbers, text is a string; a blob is {"hex": "…"}, text
// that is not UTF-8 is {"text_hex": "…"}, a non-finite float is
// {"float": "NaN"|"+Inf"|"-Inf"}.
type JSONWriter struct {
	w      io.Writer
	tables int
	rows   int64
	buf    []byte
}

// NewJSONWriter starts the document with header as the "dossier" object.
func NewJSONWriter(w io.Writer, header any) (*JSONWriter, error) {
	h, err := json.Marshal(header)
	if err != nil {
		return nil, err
	}
	_, err = io.WriteString(w, `{"dossier":`+string(h)+`,"tables":[`)
	return &JSONWriter{w: w}, err
}

// BeginTable implements Sink.
func (j *JSONWriter) BeginTable(_ context.Context, t source.TableMeta) error {
	name, _ := json.Marshal(t.Name)
	sep := ""
	if j.tables > 0 {
		sep = ","
	}
	j.tables++
	j.rows = 0
	_, err := io.WriteString(j.w, sep+"\n{\"table\":"+string(name)+",\"rows\":[")
	return err
}

// Row implements Sink.
func (j *JSONWriter) Row(_ context.Context, t source.TableMeta, row []source.Value) error {
	b := j.buf[:0]
	if j.rows > 0 {
		b = append(b, ',')
	}
	j.rows++
	b = append(b, "\n {"...)
	for i, v := range row {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, t.Columns[i].Name)
		b = append(b, ':')
		b = appendJSONValue(b, v)
	}
	b = append(b, '}')
	j.buf = b
	_, err := j.w.Write(b)
	return err
}

// EndTable implements Sink.
func (j *JSONWriter) EndTable(context.Context, source.TableMeta, int64) error {
	_, err := io.WriteString(j.w, "]}")
	return err
}

// Finish closes the document.
func (j *JSONWriter) Finish() error {
	_, err := io.WriteString(j.w, "\n]}\n")
	return err
}

func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s)
	return append(b, q...)
}

func appendJSONValue(b []byte, v source.Value) []byte {
	switch v.Kind {
	case source.KindNull:
		return append(b, "null"...)
	case source.KindInt:
		return strconv.AppendInt(b, v.Int, 10)
	case source.KindFloat:
		switch {
		case math.IsNaN(v.Float):
			return append(b, `{"float":"NaN"}`...)
		case math.IsInf(v.Float, 1):
			return append(b, `{"float":"+Inf"}`...)
		case math.IsInf(v.Float, -1):
			return append(b, `{"float":"-Inf"}`...)
		}
		return strconv.AppendFloat(b, v.Float, 'g', -1, 64)
	case source.KindBlob:
		b = append(b, `{"hex":"`...)
		b = hex.AppendEncode(b, v.Bytes)
		return append(b, `"}`...)
	}
	if !utf8.Valid(v.Bytes) {
		b = append(b, `{"text_hex":"`...)
		b = hex.AppendEncode(b, v.Bytes)
		return append(b, `"}`...)
	}
	return appendJSONString(b, string(v.Bytes))
}
