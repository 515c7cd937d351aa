// RFC 5322 address-list splitting: a tokenizer (atoms, quoted strings, domain literals,
// specials; comments and white space dropped) and a parser over its tokens.
#include "mail/address_list.hpp"

#include <optional>

namespace mailroom::mail {

namespace {

struct Token {
    char special = 0;  // one of `<>@,;:.`, or 0 for a word
    std::string text;  // a word: atom, "quoted string" or [domain literal], as written
    size_t begin = 0, end = 0;  // where it is in the input, for error lines
    bool is(char c) const { return special == c; }
    bool is_word() const { return special == 0; }
};

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

bool ends_atom(char c) {
    return is_space(c) || std::string_view("()<>[:;@,.\"").find(c) != std::string_view::npos;
}

core::Unexpected list_error(std::string_view what, std::string_view where) {
    return core::unexpected_input(std::string(what) + " in \"" + std::string(where) + "\"");
}

class Tokenizer {
public:
    explicit Tokenizer(std::string_view text) : text_(text) {}

    core::Result<std::vector<Token>> run() {
        std::vector<Token> tokens;
        while (i_ < text_.size()) {
            const char c = text_[i_];
            if (is_space(c)) {
                ++i_;
            } else if (c == '(') {
                if (!skip_comment()) return list_error("unterminated comment", text_);
            } else if (c == ')') {
                return list_error("unbalanced ')'", text_);
            } else if (c == '"' || c == '[') {
                auto token = delimited(c == '"' ? '"' : ']');
                if (!token) {
                    return list_error(c == '"' ? "unterminated quoted string"
                                               : "unterminated domain literal", text_);
                }
                tokens.push_back(std::move(*token));
            } else if (ends_atom(c)) {
                tokens.push_back(Token{c, std::string(1, c), i_, i_ + 1});
                ++i_;
            } else {
                size_t begin = i_;
                while (i_ < text_.size() && !ends_atom(text_[i_])) ++i_;
                tokens.push_back(Token{0, std::string(text_.substr(begin, i_ - begin)), begin, i_});
            }
        }
        return tokens;
    }

private:
    // Comments nest and hold quoted pairs (RFC 5322 3.2.2).
    bool skip_comment() {
        int depth = 0;
        for (; i_ < text_.size(); ++i_) {
            const char c = text_[i_];
            if (c == '\\') ++i_;
            else if (c == '(') ++depth;
            else if (c == ')' && --depth == 0) {
                ++i_;
                return true;
            }
        }
        return false;
    }

    // A quoted string or domain literal from its opening character through `close`,
    // quoted pairs kept as written; folding (CR, LF) removed, which is unfolding.
    std::optional<Token> delimited(char close) {
        Token token{0, std::string(1, text_[i_]), i_, 0};
        for (++i_; i_ < text_.size(); ++i_) {
            const char c = text_[i_];
            if (c == '\r' || c == '\n') continue;
            token.text += c;
            if (c == '\\' && i_ + 1 < text_.size()) {
                token.text += text_[++i_];
            } else if (c == close) {
                token.end = ++i_;
                return token;
            }
        }
        return std::nullopt;
    }

    std::string_view text_;
    size_t i_ = 0;
};

class ListParser {
public:
    ListParser(std::string_view text, std::vector<Token> tokens)
        : text_(text), tokens_(std::move(tokens)) {}

    core::Result<std::vector<ListedAddress>> run() {
        std::vector<ListedAddress> out;
        bool in_group = false;
        size_t i = 0;
        for (;;) {
            const size_t start = i;
            std::optional<size_t> open, close;  // the element's `<` and `>`
            for (; i < tokens_.size(); ++i) {
                const Token& t = tokens_[i];
                if (t.is(',') || t.is(';') || t.is(':')) break;
                if (t.is('>')) return list_error("'>' without '<'", source(start, next_delimiter(i)));
                if (!t.is('<')) continue;
                if (open) return list_error("two angle addresses", source(start, next_delimiter(i)));
                open = i;
                // Inside <> a source route may hold ',' and ':': jump to the '>'.
                size_t j = i + 1;
                while (j < tokens_.size() && !tokens_[j].is('>') && !tokens_[j].is('<')) ++j;
                if (j == tokens_.size() || tokens_[j].is('<')) {
                    return list_error("'<' without '>'", source(start, j));
                }
                close = i = j;
            }
            const char delimiter = i < tokens_.size() ? tokens_[i].special : 0;
            if (delimiter == ':') {
                // The tokens so far were the group's display name.
                if (open) return list_error("':' after an angle address", source(start, i + 1));
                if (in_group) return list_error("a group inside a group", source(start, i + 1));
                in_group = true;
                ++i;
                continue;
            }
            if (start < i) {
                auto address = element(start, i, open, close);
                if (!address) return core::unexpected(address.error());
                out.push_back(std::move(*address));
            }
            if (delimiter == ';') {
                if (!in_group) return list_error("';' outside a group", source(start, i + 1));
                in_group = false;
            }
            if (i >= tokens_.size()) break;
            ++i;
        }
        // A group left open at the end ("undisclosed-recipients:") is accepted.
        return out;
    }

private:
    // For error lines: the element goes on to about here.
    size_t next_delimiter(size_t i) const {
        while (i < tokens_.size() && !tokens_[i].is(',') && !tokens_[i].is(';')) ++i;
        return i;
    }

    std::string_view source(size_t first, size_t last) const {
        if (first >= last || first >= tokens_.size()) return {};
        last = std::min(last, tokens_.size());
        return text_.substr(tokens_[first].begin, tokens_[last - 1].end - tokens_[first].begin);
    }

    // One mailbox: tokens [first, last), with its angle brackets at open/close if any.
    core::Result<ListedAddress> element(size_t first, size_t last, std::optional<size_t> open,
                                        std::optional<size_t> close) const {
        const std::string where(source(first, last));
        size_t spec_first = first, spec_last = last;
        if (open) {
            if (*close + 1 != last) return list_error("text after '>'", where);
            spec_first = *open + 1;
            spec_last = *close;
            if (spec_first < spec_last && tokens_[spec_first].is('@')) {
                // Obsolete source route `@a,@b:`: dropped (RFC 5321 4.1.2, RFC 5322 4.4).
                while (spec_first < spec_last && !tokens_[spec_first].is(':')) ++spec_first;
                if (spec_first == spec_last) return list_error("bad source route", where);
                ++spec_first;
            }
        }
        ListedAddress out{std::string(), where};
        for (size_t k = spec_first; k < spec_last; ++k) {
            const Token& t = tokens_[k];
            if (!t.is_word() && !t.is('.') && !t.is('@')) {
                return list_error(std::string("unexpected '") + t.special + "'", where);
            }
            if (t.is_word() && k > spec_first && tokens_[k - 1].is_word()) {
                return list_error("two words without ',' or '<>'", where);
            }
            out.addr_spec += t.text;
        }
        return out;
    }

    std::string_view text_;
    std::vector<Token> tokens_;
};

}  // namespace

core::Result<std::vector<ListedAddress>> parse_address_list(std::string_view text) {
    auto tokens = Tokenizer(text).run();
    if (!tokens) return core::unexpected(tokens.error());
    return ListParser(text, std::move(*tokens)).run();
}

}  // namespace mailroom::mail
