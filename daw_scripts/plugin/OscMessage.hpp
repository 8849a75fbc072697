// OSC 1.0 messages, just what the plugin says to the daemon and hears back (background thread only: allocates).
// Written here rather than linked: the wire format is a few dozen lines, and liblo would be one more library every
// DAW's plugin folder must carry on macOS and Windows.
//   encoding: address and type tags as NUL-terminated strings padded to 4 bytes; int32, float32, float64 big-endian;
//   nil is a type tag with no data.
//   decoding: one message (not bundles: the daemon answers with plain messages); s i f d h T F N, others refused.

#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace dawbridge {

struct OscArgument {
    char type = 'N';     // s i f d h T F N
    std::string text;    // 's'
    double number = 0;   // 'i' 'f' 'd' 'h'; 'T' = 1
};

class OscWriter {
public:
    explicit OscWriter(const char* address) : fAddress(address), fTags(",") {}

    OscWriter& string(const std::string& value) { fTags += 's'; pad(fData, value); return *this; }
    OscWriter& int32(int32_t value) { fTags += 'i'; bigEndian(uint32_t(value), 4); return *this; }
    OscWriter& float64(double value)
    {
        uint64_t bits;
        std::memcpy(&bits, &value, sizeof bits);
        fTags += 'd';
        bigEndian(bits, 8);
        return *this;
    }
    OscWriter& nil() { fTags += 'N'; return *this; }

    std::vector<unsigned char> bytes() const
    {
        std::vector<unsigned char> out;
        pad(out, fAddress);
        pad(out, fTags);
        out.insert(out.end(), fData.begin(), fData.end());
        return out;
    }

private:
    static void pad(std::vector<unsigned char>& out, const std::string& text)
    {
        out.insert(out.end(), text.begin(), text.end());
        const size_t zeros = 4 - text.size() % 4;  // at least one NUL terminator
        out.insert(out.end(), zeros, 0);
    }
    void bigEndian(uint64_t value, int bytes)
    {
        for (int i = bytes - 1; i >= 0; --i)
            fData.push_back((unsigned char)(value >> (8 * i)));
    }

    std::string fAddress, fTags;
    std::vector<unsigned char> fData;
};

// False when the datagram is not one well-formed OSC message of the types above.
inline bool oscDecode(const unsigned char* data, size_t size, std::string& address, std::vector<OscArgument>& args)
{
    size_t at = 0;
    auto readString = [&](std::string& out) {
        const void* end = at < size ? std::memchr(data + at, 0, size - at) : nullptr;
        if (end == nullptr)
            return false;
        const size_t length = size_t(static_cast<const unsigned char*>(end) - (data + at));
        out.assign(reinterpret_cast<const char*>(data + at), length);
        at += (length / 4 + 1) * 4;
        return at <= size;
    };
    auto readBig = [&](int bytes, uint64_t& out) {
        if (at + bytes > size)
            return false;
        out = 0;
        for (int i = 0; i < bytes; ++i)
            out = (out << 8) | data[at++];
        return true;
    };
    std::string tags;
    if (!readString(address) || address.empty() || address[0] != '/' || !readString(tags) || tags.empty()
        || tags[0] != ',')
        return false;
    args.clear();
    for (size_t t = 1; t < tags.size(); ++t) {
        OscArgument arg;
        arg.type = tags[t];
        uint64_t bits = 0;
        switch (arg.type) {
        case 's':
            if (!readString(arg.text)) return false;
            break;
        case 'i':
            if (!readBig(4, bits)) return false;
            arg.number = double(int32_t(uint32_t(bits)));
            break;
        case 'f': {
            if (!readBig(4, bits)) return false;
            const uint32_t word = uint32_t(bits);
            float value;
            std::memcpy(&value, &word, sizeof value);
            arg.number = value;
            break;
        }
        case 'd': {
            if (!readBig(8, bits)) return false;
            double value;
            std::memcpy(&value, &bits, sizeof value);
            arg.number = value;
            break;
        }
        case 'h':
            if (!readBig(8, bits)) return false;
            arg.number = double(int64_t(bits));
            break;
        case 'T': arg.number = 1; break;
        case 'F': case 'N': break;
        default: return false;
        }
        args.push_back(std::move(arg));
    }
    return true;
}

}  // namespace dawbridge
