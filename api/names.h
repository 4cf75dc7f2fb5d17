/*
 * names.h - BitMEX's names of the exchange's enumerations, one table per
 * enumeration, read in both directions: the renderers print a value's name
 * and the routes parse a name back to its value.
 *
 * Names are BitMEX's exact spellings and are compared case-sensitively
 * ("Buy", never "buy"). A value without a name (ORD_NONE, SIDE_NONE, a
 * value out of range) prints as ""; "", NULL and unknown texts do not parse.
 *
 * Two tables are bit sets rather than single values: execInst (a
 * comma-separated text) and the API key permissions (a JSON array). Their
 * entries are bits, in the order BitMEX lists them; an entry whose value is
 * 0 ("read") is a name that parses and adds no bit, and is never printed in
 * a set.
 */
#ifndef PERPSIM_API_NAMES_H
#define PERPSIM_API_NAMES_H

#include <stdbool.h>
#include <stddef.h>

struct name_entry {
    unsigned value;
    const char *name;
};

struct name_table {
    const char *field; /* the BitMEX field the names are values of */
    const struct name_entry *entries;
    size_t count;
};

/* Single values. */
extern const struct name_table names_side;        /* side: enum side */
extern const struct name_table names_ord_type;    /* ordType: enum ord_type */
extern const struct name_table names_tif;         /* timeInForce: enum tif */
extern const struct name_table names_peg;         /* pegPriceType: enum peg_type */
extern const struct name_table names_contingency; /* contingencyType: enum contingency */
extern const struct name_table names_ord_status;  /* ordStatus: enum ord_status */
extern const struct name_table names_exec_type;   /* execType: enum exec_type */
extern const struct name_table names_tick;        /* tickDirection: trade_rec.tick_dir (0..3) */
extern const struct name_table names_liquidity;   /* lastLiquidityInd: exe_rec.liq (1, 2) */
extern const struct name_table names_money_kind;  /* transactType: enum money_kind */
extern const struct name_table names_bin_size;    /* binSize: enum bin_size */
/* Bit sets. */
extern const struct name_table names_exec_inst;   /* execInst: enum exec_inst bits */
extern const struct name_table names_permission;  /* permissions: enum perm bits, and "read" */

/* The name of v; "" when v has none. */
const char *name_of(const struct name_table *t, unsigned v);
/* The value named exactly text (case-sensitive) into *out; false, *out
 * unchanged, when text is NULL, "" or no name of t. */
bool name_parse(const struct name_table *t, const char *text, unsigned *out);

/* The names of the bits set in bits, comma-separated in table order
 * ("ParticipateDoNotInitiate,ReduceOnly"), into out (cap > 0); bits
 * without a name are left out, and a name that does not fit ends the
 * text. Returns the length written. */
size_t name_format_set(const struct name_table *t, unsigned bits, char *out, size_t cap);

/* The longest set text name_parse_set reads; it reads no further. */
#define NAME_SET_TEXT_MAX 255

/* A comma-separated set of names into *bits (OR of their values): empty
 * items are skipped, spaces before a name are skipped, anything else must
 * be a name exactly. false, *bits unchanged, when an item is no name. */
bool name_parse_set(const struct name_table *t, const char *text, unsigned *bits);

#endif
