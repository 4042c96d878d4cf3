// The little JSON the front needs, as JSON.parse sees it: a strict RFC 8259
// parser that validates a whole document and pulls out one top-level string
// (the config's dataDir or cniVersion) or bvcnid's answer, plus the writer of
// the request's strings. Header-only, no allocation but struct buf.
//
// The front hands over to the Node plugin whatever it is not sure about, so
// the only rule here is never to accept what JSON.parse would refuse, nor to
// read a value differently: duplicate keys keep the last, escapes are decoded
// (a lone surrogate, which JavaScript keeps in a string but UTF-8 cannot hold,
// is "unsure" in a config and U+FFFD in an answer, as Buffer.from writes it).
#ifndef BVCNI_FRONT_JSON_H
#define BVCNI_FRONT_JSON_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct buf {
	char *p;
	size_t len, cap;
	int failed; // an allocation failed: the contents are incomplete
};

static inline int buf_reserve(struct buf *b, size_t more)
{
	if (b->failed)
		return -1;
	if (b->cap - b->len >= more)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap - b->len < more) {
		if (cap > SIZE_MAX / 2) {
			b->failed = 1;
			return -1;
		}
		cap *= 2;
	}
	char *p = realloc(b->p, cap);
	if (!p) {
		b->failed = 1;
		return -1;
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

static inline void buf_put(struct buf *b, const void *s, size_t n)
{
	if (!n || buf_reserve(b, n) < 0)
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static inline void buf_puts(struct buf *b, const char *s)
{
	buf_put(b, s, strlen(s));
}

// Well-formed UTF-8 as the WHATWG decoder Node uses accepts it without a
// replacement: no overlong forms, no surrogates, nothing above U+10FFFF.
static inline int utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + n;
	while (p < end) {
		unsigned c = *p;
		if (c < 0x80) {
			p++;
			continue;
		}
		size_t len;
		unsigned lo = 0x80, hi = 0xbf;
		if (c >= 0xc2 && c <= 0xdf) {
			len = 2;
		} else if (c >= 0xe0 && c <= 0xef) {
			len = 3;
			if (c == 0xe0)
				lo = 0xa0;
			if (c == 0xed)
				hi = 0x9f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4;
			if (c == 0xf0)
				lo = 0x90;
			if (c == 0xf4)
				hi = 0x8f;
		} else {
			return 0;
		}
		if ((size_t)(end - p) < len || p[1] < lo || p[1] > hi)
			return 0;
		for (size_t i = 2; i < len; i++)
			if (p[i] < 0x80 || p[i] > 0xbf)
				return 0;
		p += len;
	}
	return 1;
}

// A JSON string of valid UTF-8: quotes, backslashes and control characters escaped.
static inline void json_put_string(struct buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	buf_put(b, "\"", 1);
	size_t run = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		buf_put(b, s + run, i - run);
		run = i + 1;
		if (c == '"' || c == '\\') {
			char e[2] = { '\\', (char)c };
			buf_put(b, e, 2);
		} else {
			char e[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
			buf_put(b, e, 6);
		}
	}
	buf_put(b, s + run, n - run);
	buf_put(b, "\"", 1);
}

struct jp {
	const char *p, *end;
	int too_deep; // gave up on nesting, not on the document
};

static inline void jp_ws(struct jp *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static inline int jp_lit(struct jp *j, const char *lit)
{
	size_t n = strlen(lit);
	if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n))
		return -1;
	j->p += n;
	return 0;
}

static inline int jp_hex4(const char *p, unsigned *out)
{
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

static inline void put_utf8(struct buf *b, unsigned cp)
{
	char u[4];
	size_t n;
	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | cp >> 6);
		u[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | cp >> 12);
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (char)(0xf0 | cp >> 18);
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	buf_put(b, u, n);
}

// A string at j->p (its opening quote), decoded into out when out is given.
// *lone counts lone surrogates (written as U+FFFD). 0, or -1 when invalid.
static inline int jp_string(struct jp *j, struct buf *out, int *lone)
{
	if (j->p >= j->end || *j->p != '"')
		return -1;
	j->p++;
	const char *run = j->p;
	for (;;) {
		if (j->p >= j->end)
			return -1;
		unsigned char c = (unsigned char)*j->p;
		if (c == '"') {
			if (out)
				buf_put(out, run, (size_t)(j->p - run));
			j->p++;
			return 0;
		}
		if (c < 0x20)
			return -1;
		if (c != '\\') {
			j->p++;
			continue;
		}
		if (out)
			buf_put(out, run, (size_t)(j->p - run));
		j->p++;
		if (j->p >= j->end)
			return -1;
		char e = *j->p++;
		unsigned cp;
		switch (e) {
		case '"': cp = '"'; break;
		case '\\': cp = '\\'; break;
		case '/': cp = '/'; break;
		case 'b': cp = '\b'; break;
		case 'f': cp = '\f'; break;
		case 'n': cp = '\n'; break;
		case 'r': cp = '\r'; break;
		case 't': cp = '\t'; break;
		case 'u':
			if (j->end - j->p < 4 || jp_hex4(j->p, &cp) < 0)
				return -1;
			j->p += 4;
			if (cp >= 0xd800 && cp <= 0xdbff) {
				unsigned lo;
				if (j->end - j->p >= 6 && j->p[0] == '\\' && j->p[1] == 'u' && jp_hex4(j->p + 2, &lo) == 0 && lo >= 0xdc00 &&
				    lo <= 0xdfff) {
					j->p += 6;
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				} else {
					cp = 0xfffd;
					if (lone)
						(*lone)++;
				}
			} else if (cp >= 0xdc00 && cp <= 0xdfff) {
				cp = 0xfffd;
				if (lone)
					(*lone)++;
			}
			break;
		default:
			return -1;
		}
		if (out)
			put_utf8(out, cp);
		run = j->p;
	}
}

static inline int jp_digits(struct jp *j)
{
	const char *s = j->p;
	while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
		j->p++;
	return j->p > s ? 0 : -1;
}

static inline int jp_number(struct jp *j)
{
	if (j->p < j->end && *j->p == '-')
		j->p++;
	if (j->p < j->end && *j->p == '0')
		j->p++;
	else if (j->p >= j->end || *j->p < '1' || *j->p > '9' || jp_digits(j) < 0)
		return -1;
	if (j->p < j->end && *j->p == '.') {
		j->p++;
		if (jp_digits(j) < 0)
			return -1;
	}
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
		j->p++;
		if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
			j->p++;
		if (jp_digits(j) < 0)
			return -1;
	}
	return 0;
}

// Skips one value (after whitespace). 0, or -1 when invalid or deeper than depth.
static inline int jp_value(struct jp *j, int depth)
{
	jp_ws(j);
	if (j->p >= j->end)
		return -1;
	char c = *j->p;
	if (c == '{' || c == '[') {
		char close = c == '{' ? '}' : ']';
		if (depth <= 0) {
			j->too_deep = 1;
			return -1;
		}
		j->p++;
		jp_ws(j);
		if (j->p < j->end && *j->p == close) {
			j->p++;
			return 0;
		}
		for (;;) {
			if (c == '{') {
				jp_ws(j);
				if (jp_string(j, NULL, NULL) < 0)
					return -1;
				jp_ws(j);
				if (j->p >= j->end || *j->p++ != ':')
					return -1;
			}
			if (jp_value(j, depth - 1) < 0)
				return -1;
			jp_ws(j);
			if (j->p >= j->end)
				return -1;
			if (*j->p == ',') {
				j->p++;
				continue;
			}
			if (*j->p++ != close)
				return -1;
			return 0;
		}
	}
	if (c == '"')
		return jp_string(j, NULL, NULL);
	if (c == 't')
		return jp_lit(j, "true");
	if (c == 'f')
		return jp_lit(j, "false");
	if (c == 'n')
		return jp_lit(j, "null");
	return jp_number(j);
}

// Walks the members of the object at j->p, calling member() with each key
// (decoded) and a parser positioned at its value, which member() must consume.
// 0, or -1 when invalid (or too deep).
typedef int (*jp_member_fn)(struct jp *j, const struct buf *key, int depth, void *ctx);

static inline int jp_object(struct jp *j, int depth, jp_member_fn member, void *ctx)
{
	if (depth <= 0) {
		j->too_deep = 1;
		return -1;
	}
	if (j->p >= j->end || *j->p != '{')
		return -1;
	j->p++;
	jp_ws(j);
	if (j->p < j->end && *j->p == '}') {
		j->p++;
		return 0;
	}
	struct buf key = { 0 };
	for (;;) {
		key.len = 0;
		jp_ws(j);
		if (jp_string(j, &key, NULL) < 0 || key.failed)
			goto bad;
		jp_ws(j);
		if (j->p >= j->end || *j->p++ != ':')
			goto bad;
		jp_ws(j);
		if (member(j, &key, depth - 1, ctx) < 0)
			goto bad;
		jp_ws(j);
		if (j->p >= j->end)
			goto bad;
		if (*j->p == ',') {
			j->p++;
			continue;
		}
		if (*j->p++ != '}')
			goto bad;
		free(key.p);
		return 0;
	}
bad:
	free(key.p);
	return -1;
}

static inline int key_is(const struct buf *key, const char *name)
{
	return key->len == strlen(name) && !memcmp(key->p, name, key->len);
}

struct json_span {
	const char *p;
	size_t len;
};

enum json_top {
	JSON_FOUND,      // a string: *out
	JSON_ABSENT,     // not there (an object without it, or an array: JavaScript reads undefined)
	JSON_NULL,       // there, null
	JSON_NOT_STRING, // there and not a string, or the document is a primitive
	JSON_INVALID,    // JSON.parse would throw
	JSON_UNSURE,     // too deep for this parser, or a lone surrogate in the value
};

struct top_ctx {
	const char *name;
	enum json_top result;
	struct buf value;
	int lone;
};

static inline int top_member(struct jp *j, const struct buf *key, int depth, void *ctx)
{
	struct top_ctx *t = ctx;
	if (!key_is(key, t->name))
		return jp_value(j, depth);
	// The last duplicate wins, as in JSON.parse.
	if (j->p < j->end && *j->p == '"') {
		t->value.len = 0;
		t->lone = 0;
		if (jp_string(j, &t->value, &t->lone) < 0)
			return -1;
		t->result = JSON_FOUND;
		return 0;
	}
	if (j->p < j->end && *j->p == 'n') {
		t->result = JSON_NULL;
		return jp_lit(j, "null");
	}
	t->result = JSON_NOT_STRING;
	return jp_value(j, depth);
}

// (JSON.parse(doc) ?? {})[name], classified.
static inline enum json_top json_top_string(const char *doc, size_t n, const char *name, int max_depth, struct json_span *out)
{
	struct jp j = { doc, doc + n, 0 };
	struct top_ctx t = { name, JSON_ABSENT, { 0 }, 0 };
	jp_ws(&j);
	char first = j.p < j.end ? *j.p : 0;
	int r;
	enum json_top kind;
	if (first == '{') {
		r = jp_object(&j, max_depth, top_member, &t);
		kind = t.result;
	} else {
		r = jp_value(&j, max_depth);
		// An array is the only other value whose properties read as undefined.
		kind = first == '[' ? JSON_ABSENT : JSON_NOT_STRING;
	}
	jp_ws(&j);
	if (r < 0 || j.p != j.end) {
		free(t.value.p);
		return j.too_deep ? JSON_UNSURE : JSON_INVALID;
	}
	if (kind == JSON_FOUND) {
		if (t.lone || t.value.failed) {
			free(t.value.p);
			return JSON_UNSURE;
		}
		out->p = t.value.p ? t.value.p : "";
		out->len = t.value.len;
	} else {
		free(t.value.p);
	}
	return kind;
}

// bvcnid's answer (src/cni/delegate.ts, DelegateReply).
enum json_answer {
	ANSWER_OUTCOME,    // {"outcome":{"stdout":…,"exitCode":0..255}}
	ANSWER_NO_OUTCOME, // an object (or array) without "outcome": declined
	ANSWER_GARBAGE,    // anything else: the answer is lost
};

struct json_outcome {
	struct json_span stdout_text;
	int exit_code;
};

struct outcome_ctx {
	int has_stdout, has_code;
	struct buf text;
	int code;
};

static inline int outcome_member(struct jp *j, const struct buf *key, int depth, void *ctx)
{
	struct outcome_ctx *o = ctx;
	if (key_is(key, "stdout")) {
		if (j->p >= j->end || *j->p != '"') {
			o->has_stdout = 0;
			return jp_value(j, depth);
		}
		o->text.len = 0;
		o->has_stdout = 1;
		return jp_string(j, &o->text, NULL);
	}
	if (key_is(key, "exitCode")) {
		const char *s = j->p;
		if (jp_value(j, depth) < 0)
			return -1;
		// A number JavaScript reads as an integer 0..255 (process.exit's range);
		// strtod rounds as JSON.parse does. Anything else is not an exit code.
		o->has_code = 0;
		if (*s != '-' && (*s < '0' || *s > '9'))
			return 0;
		char *num = strndup(s, (size_t)(j->p - s));
		if (!num)
			return 0;
		double v = strtod(num, NULL);
		free(num);
		if (!(v >= 0 && v <= 255) || v != (double)(int)v)
			return 0;
		o->code = (int)v;
		o->has_code = 1;
		return 0;
	}
	return jp_value(j, depth);
}

struct answer_ctx {
	int has_outcome; // the key is there
	int well_formed; // and its value is an outcome
	struct outcome_ctx o;
};

static inline int answer_member(struct jp *j, const struct buf *key, int depth, void *ctx)
{
	struct answer_ctx *a = ctx;
	if (!key_is(key, "outcome"))
		return jp_value(j, depth);
	a->has_outcome = 1;
	a->well_formed = 0;
	if (j->p >= j->end || *j->p != '{')
		return jp_value(j, depth);
	struct outcome_ctx o = { 0 };
	if (jp_object(j, depth, outcome_member, &o) < 0) {
		free(o.text.p);
		return -1;
	}
	free(a->o.text.p);
	a->o = o;
	a->well_formed = o.has_stdout && o.has_code && !o.text.failed;
	return 0;
}

static inline enum json_answer json_parse_answer(const char *doc, size_t n, int max_depth, struct json_outcome *out)
{
	if (!utf8_valid(doc, n))
		return ANSWER_GARBAGE;
	struct jp j = { doc, doc + n, 0 };
	struct answer_ctx a = { 0 };
	jp_ws(&j);
	char first = j.p < j.end ? *j.p : 0;
	int r;
	if (first == '{')
		r = jp_object(&j, max_depth, answer_member, &a);
	else
		r = jp_value(&j, max_depth);
	jp_ws(&j);
	if (r < 0 || j.p != j.end) {
		free(a.o.text.p);
		return ANSWER_GARBAGE;
	}
	if (!a.has_outcome) {
		free(a.o.text.p);
		// 'outcome' in reply: false for an object or an array without it; a primitive makes it throw.
		return first == '{' || first == '[' ? ANSWER_NO_OUTCOME : ANSWER_GARBAGE;
	}
	if (!a.well_formed) {
		free(a.o.text.p);
		return ANSWER_GARBAGE;
	}
	out->stdout_text.p = a.o.text.p;
	out->stdout_text.len = a.o.text.len;
	out->exit_code = a.o.code;
	return ANSWER_OUTCOME;
}

#endif
