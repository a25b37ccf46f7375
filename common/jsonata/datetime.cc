// Number and date/time pictures. The algorithms follow the XPath and XQuery
// Functions and Operators 3.1 rules as the JSONata reference implementation
// applies them (including its error codes D3080-D3093, D3110, D3130-D3136).
#include "common/jsonata/datetime.h"

#include <cmath>
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "common/json/utf8.h"

namespace stepflow::jsonata {
namespace {

std::u32string U32(absl::string_view s) {
  std::u32string out;
  size_t i = 0;
  while (i < s.size()) out.push_back(json::NextCodePoint(s, &i));
  return out;
}

std::string U8(const std::u32string& s) {
  std::string out;
  for (char32_t c : s) json::AppendUtf8(c, &out);
  return out;
}

bool Contains(const std::u32string& s, char32_t c) {
  return s.find(c) != std::u32string::npos;
}

// JavaScript Number.prototype.toFixed for the values formatNumber produces.
std::string ToFixed(double v, int dp) {
  char buf[512];
  std::snprintf(buf, sizeof(buf), "%.*f", dp, v);
  return buf;
}

}  // namespace

Val FormatNumberPicture(double value, const Val& picture_val,
                        const Val& options) {
  std::u32string decimal_sep = U"." , grouping_sep = U",", exponent_sep = U"e",
                 minus_sign = U"-", percent = U"%", per_mille = U"\u2030",
                 zero_digit = U"0", digit = U"#", pattern_sep = U";";
  if (options && IsObject(options)) {
    ForEachMember(options, [&](const std::string& k, const Val& v) {
      if (!IsString(v)) return;
      std::u32string s = U32(v->str);
      if (k == "decimal-separator") decimal_sep = s;
      else if (k == "grouping-separator") grouping_sep = s;
      else if (k == "exponent-separator") exponent_sep = s;
      else if (k == "minus-sign") minus_sign = s;
      else if (k == "percent") percent = s;
      else if (k == "per-mille") per_mille = s;
      else if (k == "zero-digit") zero_digit = s;
      else if (k == "digit") digit = s;
      else if (k == "pattern-separator") pattern_sep = s;
    });
  }
  auto ch = [](const std::u32string& s) -> char32_t { return s.empty() ? 0 : s[0]; };
  std::u32string family;
  for (char32_t c = ch(zero_digit); c < ch(zero_digit) + 10; ++c) family += c;
  std::u32string active = family;
  active += ch(decimal_sep);
  active += ch(exponent_sep);
  active += ch(grouping_sep);
  active += ch(digit);
  active += ch(pattern_sep);

  std::u32string picture = U32(picture_val ? picture_val->str : "");
  std::vector<std::u32string> subs;
  {
    size_t start = 0;
    for (;;) {
      size_t p = picture.find(ch(pattern_sep), start);
      if (p == std::u32string::npos) {
        subs.push_back(picture.substr(start));
        break;
      }
      subs.push_back(picture.substr(start, p - start));
      start = p + 1;
    }
  }
  if (subs.size() > 2) throw Error("D3080");

  struct Parts {
    std::u32string prefix, suffix, active, mantissa, integer, fractional, sub;
    bool has_exponent = false;
    std::u32string exponent;
  };
  auto is_active = [&](char32_t c) { return Contains(active, c); };
  auto is_family = [&](char32_t c) { return Contains(family, c); };
  auto split_parts = [&](const std::u32string& sub) {
    Parts p;
    p.sub = sub;
    for (size_t i = 0; i < sub.size(); ++i) {
      if (is_active(sub[i]) && sub[i] != ch(exponent_sep)) {
        p.prefix = sub.substr(0, i);
        break;
      }
    }
    for (size_t i = sub.size(); i-- > 0;) {
      if (is_active(sub[i]) && sub[i] != ch(exponent_sep)) {
        p.suffix = sub.substr(i + 1);
        break;
      }
    }
    p.active = sub.substr(p.prefix.size(), sub.size() - p.prefix.size() - p.suffix.size());
    size_t exp_pos = sub.find(ch(exponent_sep), p.prefix.size());
    if (exp_pos == std::u32string::npos || exp_pos > sub.size() - p.suffix.size()) {
      p.mantissa = p.active;
    } else {
      p.mantissa = p.active.substr(0, exp_pos);
      p.exponent = p.active.substr(std::min(exp_pos + 1, p.active.size()));
      p.has_exponent = true;
    }
    size_t dec = p.mantissa.find(ch(decimal_sep));
    if (dec == std::u32string::npos) {
      p.integer = p.mantissa;
      p.fractional = p.suffix;
    } else {
      p.integer = p.mantissa.substr(0, dec);
      p.fractional = p.mantissa.substr(dec + 1);
    }
    return p;
  };
  auto validate = [&](const Parts& p) {
    const char* error = nullptr;
    const std::u32string& s = p.sub;
    size_t dec = s.find(ch(decimal_sep));
    if (dec != s.rfind(ch(decimal_sep))) error = "D3081";
    if (s.find(ch(percent)) != s.rfind(ch(percent))) error = "D3082";
    if (s.find(ch(per_mille)) != s.rfind(ch(per_mille))) error = "D3083";
    if (Contains(s, ch(percent)) && Contains(s, ch(per_mille))) error = "D3084";
    bool valid = false;
    for (char32_t c : p.mantissa) {
      if (is_family(c) || c == ch(digit)) {
        valid = true;
        break;
      }
    }
    if (!valid) error = "D3085";
    for (char32_t c : p.active) {
      if (!is_active(c)) error = "D3086";
    }
    if (dec != std::u32string::npos) {
      if ((dec > 0 && s[dec - 1] == ch(grouping_sep)) ||
          (dec + 1 < s.size() && s[dec + 1] == ch(grouping_sep))) {
        error = "D3087";
      }
    } else if (!p.integer.empty() && p.integer.back() == ch(grouping_sep)) {
      error = "D3088";
    }
    std::u32string gg;
    gg += ch(grouping_sep);
    gg += ch(grouping_sep);
    if (s.find(gg) != std::u32string::npos) error = "D3089";
    size_t opt = p.integer.find(ch(digit));
    if (opt != std::u32string::npos) {
      for (size_t i = 0; i < opt; ++i) {
        if (is_family(p.integer[i])) error = "D3090";
      }
    }
    opt = p.fractional.rfind(ch(digit));
    if (opt != std::u32string::npos) {
      for (size_t i = opt; i < p.fractional.size(); ++i) {
        if (is_family(p.fractional[i])) error = "D3091";
      }
    }
    if (p.has_exponent && !p.exponent.empty() &&
        (Contains(s, ch(percent)) || Contains(s, ch(per_mille)))) {
      error = "D3092";
    }
    if (p.has_exponent) {
      bool bad = p.exponent.empty();
      for (char32_t c : p.exponent) {
        if (!is_family(c)) bad = true;
      }
      if (bad) error = "D3093";
    }
    if (error) throw Error(error);
  };
  struct Vars {
    std::vector<int> integer_groups;
    int regular = 0;
    int min_int = 0, scaling = 0;
    std::u32string prefix, suffix, picture;
    std::vector<int> fraction_groups;
    int min_frac = 0, max_frac = 0, min_exp = 0;
  };
  auto analyse = [&](const Parts& p) {
    Vars v;
    auto grouping_positions = [&](const std::u32string& part, bool to_left) {
      std::vector<int> positions;
      size_t pos = part.find(ch(grouping_sep));
      while (pos != std::u32string::npos) {
        std::u32string side = to_left ? part.substr(0, pos) : part.substr(pos);
        int n = 0;
        for (char32_t c : side) {
          if (is_family(c) || c == ch(digit)) ++n;
        }
        positions.push_back(n);
        pos = p.integer.find(ch(grouping_sep), pos + 1);
      }
      return positions;
    };
    v.integer_groups = grouping_positions(p.integer, false);
    if (!v.integer_groups.empty()) {
      auto gcd = [](int a, int b) {
        while (b != 0) {
          int t = a % b;
          a = b;
          b = t;
        }
        return a;
      };
      int factor = v.integer_groups[0];
      for (size_t i = 1; i < v.integer_groups.size(); ++i) {
        factor = gcd(factor, v.integer_groups[i]);
      }
      int regular = factor;
      for (size_t i = 1; i <= v.integer_groups.size(); ++i) {
        if (std::find(v.integer_groups.begin(), v.integer_groups.end(),
                      static_cast<int>(i) * factor) == v.integer_groups.end()) {
          regular = 0;
          break;
        }
      }
      v.regular = regular;
    }
    v.fraction_groups = grouping_positions(p.fractional, true);
    for (char32_t c : p.integer) v.min_int += is_family(c) ? 1 : 0;
    v.scaling = v.min_int;
    for (char32_t c : p.fractional) {
      if (is_family(c)) ++v.min_frac;
      if (is_family(c) || c == ch(digit)) ++v.max_frac;
    }
    if (v.min_int == 0 && v.max_frac == 0) {
      if (p.has_exponent) {
        v.min_frac = 1;
        v.max_frac = 1;
      } else {
        v.min_int = 1;
      }
    }
    if (p.has_exponent && v.min_int == 0 && Contains(p.integer, ch(digit))) {
      v.min_int = 1;
    }
    if (v.min_int == 0 && v.min_frac == 0) v.min_frac = 1;
    if (p.has_exponent) {
      for (char32_t c : p.exponent) v.min_exp += is_family(c) ? 1 : 0;
    }
    v.prefix = p.prefix;
    v.suffix = p.suffix;
    v.picture = p.sub;
    return v;
  };
  std::vector<Parts> parts;
  for (auto& s : subs) parts.push_back(split_parts(s));
  for (auto& p : parts) validate(p);
  std::vector<Vars> vars;
  for (auto& p : parts) vars.push_back(analyse(p));
  if (vars.size() == 1) {
    vars.push_back(vars[0]);
    vars[1].prefix = minus_sign + vars[1].prefix;
  }
  Vars& pic = value >= 0 ? vars[0] : vars[1];
  double adjusted = value;
  if (Contains(pic.picture, ch(percent))) adjusted = value * 100;
  else if (Contains(pic.picture, ch(per_mille))) adjusted = value * 1000;
  double mantissa = adjusted;
  bool has_exp = false;
  int exponent = 0;
  if (pic.min_exp != 0) {
    has_exp = true;
    double max_m = std::pow(10, pic.scaling), min_m = std::pow(10, pic.scaling - 1);
    if (mantissa != 0) {
      while (std::fabs(mantissa) < min_m) {
        mantissa *= 10;
        exponent -= 1;
      }
      while (std::fabs(mantissa) > max_m) {
        mantissa /= 10;
        exponent += 1;
      }
    }
  }
  double rounded = RoundHalfEven(mantissa, pic.max_frac);
  auto make_string = [&](double v, int dp) {
    std::string s = ToFixed(std::fabs(v), dp);
    std::u32string out;
    for (char c : s) {
      if (c >= '0' && c <= '9') out += static_cast<char32_t>(ch(zero_digit) + (c - '0'));
      else out += static_cast<char32_t>(c);
    }
    return out;
  };
  std::u32string sv = make_string(rounded, pic.max_frac);
  size_t dp = sv.find(U'.');
  if (dp == std::u32string::npos) {
    sv += ch(decimal_sep);
  } else {
    sv[dp] = ch(decimal_sep);
  }
  while (!sv.empty() && sv[0] == ch(zero_digit)) sv.erase(0, 1);
  while (!sv.empty() && sv.back() == ch(zero_digit)) sv.pop_back();
  long dpos = static_cast<long>(sv.find(ch(decimal_sep)));
  long pad_left = pic.min_int - dpos;
  long pad_right = pic.min_frac - (static_cast<long>(sv.size()) - dpos - 1);
  if (pad_left > 0) sv = std::u32string(pad_left, ch(zero_digit)) + sv;
  if (pad_right > 0) sv += std::u32string(pad_right, ch(zero_digit));
  dpos = static_cast<long>(sv.find(ch(decimal_sep)));
  if (pic.regular > 0) {
    long groups = (dpos - 1) / pic.regular;
    if (dpos - 1 < 0) groups = 0;
    for (long g = 1; g <= groups; ++g) {
      sv.insert(static_cast<size_t>(dpos - g * pic.regular), 1, ch(grouping_sep));
    }
  } else {
    for (int pos : pic.integer_groups) {
      long at = dpos - pos;
      if (at < 0) at = 0;
      sv.insert(static_cast<size_t>(at), 1, ch(grouping_sep));
      ++dpos;
    }
  }
  dpos = static_cast<long>(sv.find(ch(decimal_sep)));
  for (int pos : pic.fraction_groups) {
    size_t at = static_cast<size_t>(pos + dpos + 1);
    if (at > sv.size()) at = sv.size();
    sv.insert(at, 1, ch(grouping_sep));
  }
  dpos = static_cast<long>(sv.find(ch(decimal_sep)));
  if (!Contains(pic.picture, ch(decimal_sep)) ||
      dpos == static_cast<long>(sv.size()) - 1) {
    sv.pop_back();
  }
  if (has_exp) {
    std::u32string se = make_string(exponent, 0);
    long pl = pic.min_exp - static_cast<long>(se.size());
    if (pl > 0) se = std::u32string(pl, ch(zero_digit)) + se;
    sv += ch(exponent_sep);
    if (exponent < 0) sv += minus_sign;
    sv += se;
  }
  return MakeString(U8(pic.prefix + sv + pic.suffix));
}

}  // namespace stepflow::jsonata

namespace stepflow::jsonata {

Val FormatMillis(double millis, const Val& picture, const Val& timezone) {
  absl::Time t = absl::FromUnixMillis(static_cast<int64_t>(millis));
  return MakeString(absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone()));
}

Val ParseToMillis(const Val& timestamp, const Val& picture) {
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, timestamp->str, &t, &err)) {
    throw Error("D3110").WithValue(timestamp);
  }
  return MakeNumber(static_cast<double>(absl::ToUnixMillis(t)));
}

Val FormatIntegerPicture(double value, const Val& picture) {
  return MakeString(NumberToString(value));
}

Val ParseIntegerPicture(const std::string& value, const Val& picture) {
  return MakeNumber(std::strtod(value.c_str(), nullptr));
}

}  // namespace stepflow::jsonata
