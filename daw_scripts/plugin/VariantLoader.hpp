// Loading a delivered variant (background thread only: allocates and reads files): the daemon's manifest (JSON,
// format daw-bridge.manifest/1) and the WAV it names, into stereo floats (one vector per channel).
// A small reader of our own instead of libsndfile: the daemon writes plain WAV (float32 from a capture, PCM 16/24/32
// from PCM sources), and a plugin that links no shared library beyond libc/libstdc++ installs on any DAW machine by
// copying one bundle.

#pragma once

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace dawbridge {

// ---------------------------------------------------------------------------------------------------------------------
// Just enough JSON: objects, arrays, strings (\uXXXX kept only for ASCII), numbers, true/false/null.

struct JsonValue {
    enum Type { Null, Bool, Number, String, Array, Object } type = Null;
    double number = 0;
    std::string text;
    std::vector<JsonValue> items;
    std::vector<std::pair<std::string, JsonValue>> members;

    const JsonValue* get(const char* key) const
    {
        for (const auto& member : members)
            if (member.first == key)
                return &member.second;
        return nullptr;
    }
};

// A JSON number as an int: `fallback` when it is none, or not a whole number within int's range (a project or a
// manifest edited by hand may hold 1e300 or 2.5; casting 1e300 to int is undefined behaviour).
static inline int integerOr(const JsonValue* value, int fallback) noexcept
{
    if (!value || value->type != JsonValue::Number || !(value->number >= double(INT_MIN))
        || !(value->number <= double(INT_MAX)) || value->number != std::floor(value->number))
        return fallback;
    return int(value->number);
}

class JsonParser {
public:
    explicit JsonParser(const std::string& text) : fText(text) {}

    bool parse(JsonValue& out)
    {
        if (!value(out, 0))
            return false;
        space();
        return fAt == fText.size();
    }

private:
    void space()
    {
        while (fAt < fText.size() && std::strchr(" \t\r\n", fText[fAt]) != nullptr)
            ++fAt;
    }
    bool literal(const char* word)
    {
        const size_t n = std::strlen(word);
        if (fText.compare(fAt, n, word) != 0)
            return false;
        fAt += n;
        return true;
    }
    bool string(std::string& out)
    {
        if (fAt >= fText.size() || fText[fAt] != '"')
            return false;
        ++fAt;
        while (fAt < fText.size() && fText[fAt] != '"') {
            char c = fText[fAt++];
            if (c == '\\') {
                if (fAt >= fText.size())
                    return false;
                const char e = fText[fAt++];
                switch (e) {
                case 'n': c = '\n'; break;
                case 't': c = '\t'; break;
                case 'r': c = '\r'; break;
                case 'b': c = '\b'; break;
                case 'f': c = '\f'; break;
                case 'u': {
                    if (fAt + 4 > fText.size())
                        return false;
                    const unsigned long code = std::strtoul(fText.substr(fAt, 4).c_str(), nullptr, 16);
                    fAt += 4;
                    c = code < 0x80 ? char(code) : '?';
                    break;
                }
                default: c = e;  // " \ /
                }
            }
            out += c;
        }
        if (fAt >= fText.size())
            return false;
        ++fAt;
        return true;
    }
    bool value(JsonValue& out, int depth)
    {
        if (depth > 32)
            return false;
        space();
        if (fAt >= fText.size())
            return false;
        const char c = fText[fAt];
        if (c == '{') {
            out.type = JsonValue::Object;
            ++fAt;
            space();
            if (fAt < fText.size() && fText[fAt] == '}')
                return ++fAt, true;
            for (;;) {
                std::string key;
                space();
                if (!string(key))
                    return false;
                space();
                if (fAt >= fText.size() || fText[fAt++] != ':')
                    return false;
                out.members.emplace_back(std::move(key), JsonValue());
                if (!value(out.members.back().second, depth + 1))
                    return false;
                space();
                if (fAt < fText.size() && fText[fAt] == ',') { ++fAt; continue; }
                return fAt < fText.size() && fText[fAt++] == '}';
            }
        }
        if (c == '[') {
            out.type = JsonValue::Array;
            ++fAt;
            space();
            if (fAt < fText.size() && fText[fAt] == ']')
                return ++fAt, true;
            for (;;) {
                out.items.emplace_back();
                if (!value(out.items.back(), depth + 1))
                    return false;
                space();
                if (fAt < fText.size() && fText[fAt] == ',') { ++fAt; continue; }
                return fAt < fText.size() && fText[fAt++] == ']';
            }
        }
        if (c == '"')
            return out.type = JsonValue::String, string(out.text);
        if (literal("true"))
            return out.type = JsonValue::Bool, out.number = 1, true;
        if (literal("false"))
            return out.type = JsonValue::Bool, true;
        if (literal("null"))
            return true;
        const char* begin = fText.c_str() + fAt;
        char* end = nullptr;
        out.number = std::strtod(begin, &end);
        if (end == begin)
            return false;
        out.type = JsonValue::Number;
        fAt += size_t(end - begin);
        return true;
    }

    const std::string& fText;
    size_t fAt = 0;
};

// The whole of a plain file of at most maxBytes, else why not ("" when read). Only a plain file: a path from a message
// or a saved project naming a FIFO would block the background thread (and the host's close, which joins it) for
// good, and /dev/zero would fill the memory.
static inline std::string readWholeFile(const std::string& path, std::string& out, size_t maxBytes)
{
    const int fd = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return std::strerror(errno);
    struct stat info;
    std::string why;
    if (fstat(fd, &info) != 0)
        why = std::strerror(errno);
    else if (!S_ISREG(info.st_mode))
        why = "not a plain file";
    else if (uint64_t(info.st_size) > maxBytes)
        why = "larger than " + std::to_string(maxBytes >> 20) + " MiB";
    FILE* f = why.empty() ? fdopen(fd, "rb") : nullptr;
    if (f == nullptr) {
        close(fd);
        return why.empty() ? std::string(std::strerror(errno)) : why;
    }
    out.clear();
    out.reserve(size_t(info.st_size));
    char buffer[65536];
    size_t n;
    while (out.size() <= maxBytes && (n = std::fread(buffer, 1, sizeof buffer, f)) > 0)
        out.append(buffer, n);
    if (std::ferror(f))
        why = "a read error";
    else if (out.size() > maxBytes)
        why = "larger than " + std::to_string(maxBytes >> 20) + " MiB";
    std::fclose(f);
    return why;
}

// ---------------------------------------------------------------------------------------------------------------------
// WAV: RIFF/WAVE, fmt (PCM 16/24/32 bit, IEEE float 32/64, or EXTENSIBLE of those), data. Mono is played on both
// channels; more than two channels are refused.

static inline uint32_t le(const unsigned char* p, int bytes)
{
    uint32_t value = 0;
    for (int i = bytes - 1; i >= 0; --i)
        value = (value << 8) | p[i];
    return value;
}

// Stereo floats, one vector per channel (a mono file in both), and the file's sample rate; an empty string on
// success, else why not.
static inline std::string readWav(const std::string& path, std::vector<float> (&stereo)[2], uint32_t& sampleRate)
{
    std::string file;
    if (std::string why = readWholeFile(path, file, size_t(1) << 32); !why.empty())  // RIFF: at most 4 GiB
        return "cannot read " + path + ": " + why;
    const auto* data = reinterpret_cast<const unsigned char*>(file.data());
    const size_t size = file.size();
    if (size < 12 || std::memcmp(data, "RIFF", 4) != 0 || std::memcmp(data + 8, "WAVE", 4) != 0)
        return path + " is not a WAV file";
    uint32_t format = 0, channels = 0, bits = 0;
    const unsigned char* samples = nullptr;
    size_t sampleBytes = 0;
    for (size_t at = 12; at + 8 <= size;) {
        const uint32_t chunk = le(data + at + 4, 4);
        const unsigned char* body = data + at + 8;
        const size_t available = std::min<size_t>(chunk, size - at - 8);
        if (std::memcmp(data + at, "fmt ", 4) == 0 && available >= 16) {
            format = le(body, 2);
            channels = le(body + 2, 2);
            sampleRate = le(body + 4, 4);
            bits = le(body + 14, 2);
            if (format == 0xFFFE && available >= 26)
                format = le(body + 24, 2);  // the sub-format GUID starts with the plain format code
        } else if (std::memcmp(data + at, "data", 4) == 0) {
            samples = body;
            sampleBytes = available;
        }
        at += 8 + size_t(chunk) + (chunk & 1);
    }
    if (samples == nullptr || channels == 0)
        return path + ": no fmt or data chunk";
    if (channels > 2)
        return path + ": " + std::to_string(channels) + " channels (1 or 2 are played)";
    const bool isFloat = format == 3 && (bits == 32 || bits == 64);
    const bool isPcm = format == 1 && (bits == 16 || bits == 24 || bits == 32);
    if (!isFloat && !isPcm)
        return path + ": sample format " + std::to_string(format) + "/" + std::to_string(bits)
            + " bits (PCM 16/24/32 or float 32/64 are read)";
    const uint32_t width = bits / 8;
    const size_t frames = sampleBytes / (width * channels);
    for (std::vector<float>& channel : stereo)
        channel.assign(frames, 0.0f);
    for (size_t i = 0; i < frames; ++i)
        for (uint32_t c = 0; c < 2; ++c) {
            const unsigned char* p = samples + (i * channels + (channels == 2 ? c : 0)) * width;
            float value;
            if (isFloat && bits == 32) {
                const uint32_t word = le(p, 4);
                std::memcpy(&value, &word, sizeof value);
            } else if (isFloat) {
                const uint64_t word = uint64_t(le(p, 4)) | (uint64_t(le(p + 4, 4)) << 32);
                double wide;
                std::memcpy(&wide, &word, sizeof wide);
                value = float(wide);
            } else {
                // sign-extend from the sample's width, then scale to -1..1 as libsndfile does
                const int32_t raw = int32_t(le(p, int(width)) << (32 - bits));
                value = float(double(raw) / 2147483648.0);
            }
            stereo[c][i] = value;
        }
    if (isFloat)  // a NaN or infinity would reach the host's output (a float64 beyond float's range is one now)
        for (size_t i = 0; i < frames; ++i)
            if (!std::isfinite(stereo[0][i]) || !std::isfinite(stereo[1][i])) {
                char at[64];
                std::snprintf(at, sizeof at, "%.3f", double(i) / (sampleRate ? sampleRate : 1));
                return path + ": sample " + std::to_string(i) + " (at " + at + " s) is not a finite number";
            }
    return {};
}

// ---------------------------------------------------------------------------------------------------------------------

struct Variant {
    int number = 0;              // the manifest's variant (1..n)
    uint32_t sampleRate = 0;     // its audio's: it plays only while the host runs at this rate
    int64_t timelineFrame = 0;   // where its first frame plays on the host's timeline, in frames at sampleRate
    int64_t frames = 0;
    std::vector<float> stereo[2];  // left, right: frames each (planar, as the host's buffers are)
    float gain = 1.0f;           // brings its loudness to the original's over its span (Match loudness)
};

static inline std::string folderOf(const std::string& path)
{
    const size_t slash = path.find_last_of('/');
    return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

// One manifest and its audio, placed on the timeline at the audio's own rate (the host may run at another rate when
// it is loaded: a VST3 or CLAP host sets the project's state before it says its rate); an empty string on success,
// else why not.
static inline std::string loadVariant(const std::string& manifestPath, Variant& variant)
{
    std::string text;
    if (std::string why = readWholeFile(manifestPath, text, size_t(1) << 20); !why.empty())
        return "cannot read the manifest " + manifestPath + ": " + why;
    JsonValue manifest;
    if (!JsonParser(text).parse(manifest) || manifest.type != JsonValue::Object)
        return manifestPath + " is not a JSON object";
    const JsonValue* audio = manifest.get("audio");
    const JsonValue* timeline = manifest.get("timeline");
    const JsonValue* position = timeline ? timeline->get("position") : nullptr;
    const JsonValue* number = manifest.get("variant");
    const JsonValue* frames = manifest.get("frames");
    if (!audio || audio->type != JsonValue::String || audio->text.empty()
        || audio->text.find('/') != std::string::npos || !position || position->type != JsonValue::Number)
        return manifestPath + ": needs \"audio\" (a file name beside it) and \"timeline\": {\"position\"}";
    if (!(position->number >= 0.0 && position->number < 1e7))  // also NaN and infinity (strtod reads "nan", "1e999")
        return manifestPath + ": \"timeline\": {\"position\"} is not a time on the timeline (seconds from 0)";
    const std::string wav = folderOf(manifestPath) + "/" + audio->text;
    if (std::string why = readWav(wav, variant.stereo, variant.sampleRate); !why.empty())
        return why;
    if (variant.sampleRate == 0)
        return wav + ": a sample rate of 0 Hz";
    variant.frames = int64_t(variant.stereo[0].size());
    // a file cut short (a copy or a sync that stopped) played part of the take and then the original, unsaid
    if (frames && frames->type == JsonValue::Number && frames->number > double(variant.frames))
        return wav + " holds " + std::to_string(variant.frames) + " frames, its manifest says "
            + std::to_string(int64_t(std::min(frames->number, 1e15))) + " (cut short?)";
    if (frames && frames->type == JsonValue::Number && frames->number >= 0 && frames->number < double(variant.frames))
        variant.frames = int64_t(frames->number);
    if (variant.frames == 0)
        return wav + " holds no audio";
    for (std::vector<float>& channel : variant.stereo)
        channel.resize(size_t(variant.frames));
    variant.timelineFrame = int64_t(std::llround(position->number * variant.sampleRate));
    variant.number = integerOr(number, 0);
    return {};
}

}  // namespace dawbridge
