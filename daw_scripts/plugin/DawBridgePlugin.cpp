// daw-bridge plugin: a stereo pass-through that captures what the host plays, indexed by the host's timeline, into
// files the daemon can read; sends the trigger parameters to the daemon over OSC; plays delivered variants in place.
//
// Threads: run() (the host's audio thread) only copies samples into preallocated lock-free rings, reads atomics,
// leaves the host's transport in a mailbox of atomics (TransportMailbox) and reads variant buffers it was handed by an
// atomic pointer: no allocation, lock, wait, file or socket call. The
// background thread (started in the constructor, joined in the destructor) drains the rings every 20 ms, does every
// file operation, owns the UDP socket (its port is the instance's reply port), loads delivered variants and swaps
// them in; a replaced set is freed only once run() has finished a block after the swap (epoch counter). A decision
// the daemon reports (/bridge/decided: choose, keep or discard from a pad, the voice or the CLI) reaches run() as one
// atomic that overrides the Variant parameter until the host changes it. The host's
// state calls (getState/setState, on its own thread) share only a mutex-guarded copy of the job with the background
// thread, which does the restoring; run() never takes that lock.
//
// Capture format (daw-bridge.capture/1), one folder per plugin instance:
//   $DAW_BRIDGE_CAPTURE_DIR, else $XDG_STATE_HOME/daw-bridge/captures, else ~/.local/state/daw-bridge/captures,
//   then /<instance>/ with instance = "<pid>-<format>-<n>" (format: lv2, vst3, clap; n: counted per loaded binary,
//   skipping a name whose folder exists).
//   span-000001.wav ...  one 32-bit float WAV per contiguous stretch of played timeline (a locate, a stop, a
//                        sample-rate change or a dropped block starts a new span)
//   index.json           {"format", "instance", "plugin_format", "channels", "spans": [{"file", "sample_rate",
//                        "timeline_start_frame", "frames"}], "dropped_blocks", "requests": [...], "transport"};
//                        replaced atomically (rename) after the spans' audio is written, so every frame it names is
//                        on disk. "transport" is the host's as run() last saw it (see transportJson): playing, the
//                        position, tempo and beats per bar, when that was (wall clock), and the tempo and signature
//                        each stretch of timeline was played at; the daemon counts bars from the play cursor with it.
//                        "was": the names the plugin had in its project before (newest first), once it has any: the
//                        daemon takes a prompt kept under one of them (see restoreNames).
//   Spans are listed in the order they were played; where two spans cover the same timeline frames, the later one
//   is the newer take of the host's audio.

#include "DistrhoPlugin.hpp"
#include "DistrhoPluginUtils.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <thread>
#include <utility>
#include <unistd.h>
#include <vector>
#ifdef __SSE__
#include <xmmintrin.h>
#endif

#include "OscMessage.hpp"
#include "VariantLoader.hpp"

#ifdef DAW_BRIDGE_RT_CHECK
// Test build only: count every operator new made on a thread while it is inside run(). This plugin's version script
// keeps these definitions local to the plugin, so they see the plugin's (and DPF's wrapper's) allocations only.
#include <new>
static thread_local bool tInRun = false;
static std::atomic<uint64_t> gAllocationsInRun{0};

static void* countedAllocation(std::size_t size)
{
    if (tInRun)
        gAllocationsInRun.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(size ? size : 1))
        return p;
    throw std::bad_alloc();
}
void* operator new(std::size_t size) { return countedAllocation(size); }
void* operator new[](std::size_t size) { return countedAllocation(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
#endif

START_NAMESPACE_DISTRHO

static constexpr uint32_t kChannels = DISTRHO_PLUGIN_NUM_OUTPUTS;

// ---------------------------------------------------------------------------------------------------------------------
// Single-producer (run) / single-consumer (capture thread) rings. Capacities are powers of two; indices only grow.

struct BlockRecord {
    int64_t timelineFrame;  // host timeline position of the block's first frame
    uint32_t frames;
    uint32_t sampleRate;
    double tempo;       // the host's BPM during the block; 0: it gave no bar/beat position
    float beatsPerBar;
    uint32_t retract = 0;  // no samples: the last `retract` frames pushed were not at timelineFrame after all
};

class CaptureRing {
public:
    static constexpr uint32_t kFrameCapacity = 1u << 20;  // frames per channel: ~21 s at 48 kHz
    static constexpr uint32_t kBlockCapacity = 1u << 13;

    CaptureRing() : fSamples(size_t(kFrameCapacity) * kChannels), fBlocks(kBlockCapacity) {}

    // Audio thread. False (and nothing written) when the consumer has fallen behind. Planar (one ring per channel),
    // so a block is at most two copies per channel; the capture thread interleaves.
    bool push(const float* const* channels, const BlockRecord& block) noexcept
    {
        const uint32_t frames = block.frames;
        const uint64_t fw = fFrameWrite.load(std::memory_order_relaxed);
        const uint64_t bw = fBlockWrite.load(std::memory_order_relaxed);
        if (fw + frames - fFrameRead.load(std::memory_order_acquire) > kFrameCapacity
            || bw + 1 - fBlockRead.load(std::memory_order_acquire) > kBlockCapacity)
            return false;
        const uint32_t offset = uint32_t(fw & (kFrameCapacity - 1));
        const uint32_t first = std::min(frames, kFrameCapacity - offset);
        const bool streamed = frames >= kStreamFrames;
        for (uint32_t c = 0; c < kChannels; ++c) {
            float* ring = fSamples.data() + size_t(c) * kFrameCapacity;
            copy(ring + offset, channels[c], first, streamed);
            copy(ring, channels[c] + first, frames - first, streamed);
        }
#ifdef __SSE__
        if (streamed)
            _mm_sfence();  // the streamed samples are visible before the indices that publish them
#endif
        fBlocks[bw & (kBlockCapacity - 1)] = block;
        fFrameWrite.store(fw + frames, std::memory_order_release);
        fBlockWrite.store(bw + 1, std::memory_order_release);
        return true;
    }

    // Capture thread: takes the next block, its samples interleaved into `interleaved` (frames * kChannels).
    bool pop(BlockRecord& block, std::vector<float>& interleaved)
    {
        const uint64_t br = fBlockRead.load(std::memory_order_relaxed);
        if (br == fBlockWrite.load(std::memory_order_acquire))
            return false;
        block = fBlocks[br & (kBlockCapacity - 1)];
        const uint64_t fr = fFrameRead.load(std::memory_order_relaxed);
        interleaved.resize(size_t(block.frames) * kChannels);
        for (uint32_t c = 0; c < kChannels; ++c) {
            const float* ring = fSamples.data() + size_t(c) * kFrameCapacity;
            for (uint32_t i = 0; i < block.frames; ++i)
                interleaved[size_t(i) * kChannels + c] = ring[(fr + i) & (kFrameCapacity - 1)];
        }
        fFrameRead.store(fr + block.frames, std::memory_order_release);
        fBlockRead.store(br + 1, std::memory_order_release);
        return true;
    }

private:
    // The ring is cold in the cache (each block lands where the ring was ~21 s of audio ago), and plain stores fetch
    // every line they overwrite: fine for a small block, whose stores drain after run() returns, but a large block
    // waits on those fetches. It is streamed past the cache instead (non-temporal stores, x86), which fetch nothing.
    static constexpr uint32_t kStreamFrames = 512;

    static void copy(float* to, const float* from, uint32_t frames, [[maybe_unused]] bool streamed) noexcept
    {
        uint32_t i = 0;
#ifdef __SSE__
        if (streamed) {
            for (; i < frames && reinterpret_cast<uintptr_t>(to + i) % 16 != 0; ++i)
                to[i] = from[i];
            for (; i + 4 <= frames; i += 4)
                _mm_stream_ps(to + i, _mm_loadu_ps(from + i));
        }
#endif
        std::memcpy(to + i, from + i, sizeof(float) * (frames - i));
    }

    std::vector<float> fSamples;  // channel c's ring at c * kFrameCapacity
    std::vector<BlockRecord> fBlocks;
    alignas(64) std::atomic<uint64_t> fFrameWrite{0};
    alignas(64) std::atomic<uint64_t> fBlockWrite{0};
    alignas(64) std::atomic<uint64_t> fFrameRead{0};
    alignas(64) std::atomic<uint64_t> fBlockRead{0};
};

// ---------------------------------------------------------------------------------------------------------------------
// The host's transport as run() last saw it, for the capture index (the daemon counts bars from it).

struct HostTransport {
    int64_t timelineFrame = 0;  // the block's first frame
    int64_t observedNs = 0;     // wall clock (ns since the epoch) when run() saw it; 0: never
    double tempo = 0.0;         // BPM; 0: the host gave no bar/beat position
    float beatsPerBar = 0.0f;
    uint32_t sampleRate = 0;
    bool playing = false;

    bool sameAs(const HostTransport& o) const noexcept  // the same transport, whenever it was observed
    {
        return timelineFrame == o.timelineFrame && tempo == o.tempo && beatsPerBar == o.beatsPerBar
            && sampleRate == o.sampleRate && playing == o.playing;
    }
};

// One writer (run: every block while the host plays, else when the transport changed) and one reader (the capture
// thread), lock-free: a sequence lock, odd while the writer is between its stores. The writer never waits; the reader
// copies again when a write overlapped its copy.
class TransportMailbox {
public:
    void write(const HostTransport& t) noexcept
    {
        const uint32_t version = fVersion.load(std::memory_order_relaxed);
        fVersion.store(version + 1, std::memory_order_relaxed);
        std::atomic_thread_fence(std::memory_order_release);
        fFrame.store(t.timelineFrame, std::memory_order_relaxed);
        fObserved.store(t.observedNs, std::memory_order_relaxed);
        fTempo.store(t.tempo, std::memory_order_relaxed);
        fBeatsPerBar.store(t.beatsPerBar, std::memory_order_relaxed);
        fSampleRate.store(t.sampleRate, std::memory_order_relaxed);
        fPlaying.store(t.playing, std::memory_order_relaxed);
        fVersion.store(version + 2, std::memory_order_release);
    }

    HostTransport read() const
    {
        for (;;) {
            const uint32_t before = fVersion.load(std::memory_order_acquire);
            HostTransport t;
            t.timelineFrame = fFrame.load(std::memory_order_relaxed);
            t.observedNs = fObserved.load(std::memory_order_relaxed);
            t.tempo = fTempo.load(std::memory_order_relaxed);
            t.beatsPerBar = fBeatsPerBar.load(std::memory_order_relaxed);
            t.sampleRate = fSampleRate.load(std::memory_order_relaxed);
            t.playing = fPlaying.load(std::memory_order_relaxed);
            std::atomic_thread_fence(std::memory_order_acquire);
            if (!(before & 1) && fVersion.load(std::memory_order_relaxed) == before)
                return t;
            std::this_thread::yield();
        }
    }

private:
    std::atomic<uint32_t> fVersion{0};
    std::atomic<int64_t> fFrame{0}, fObserved{0};
    std::atomic<double> fTempo{0.0};
    std::atomic<float> fBeatsPerBar{0.0f};
    std::atomic<uint32_t> fSampleRate{0};
    std::atomic<bool> fPlaying{false};
};

// ---------------------------------------------------------------------------------------------------------------------
// Capture files (capture thread only).

static bool makeDirs(const std::string& path)
{
    for (size_t at = 1; at <= path.size(); ++at)
        if (at == path.size() || path[at] == '/')
            if (mkdir(path.substr(0, at).c_str(), 0700) != 0 && errno != EEXIST)
                return false;
    return true;
}

static std::string captureRoot()
{
    if (const char* dir = std::getenv("DAW_BRIDGE_CAPTURE_DIR"); dir && *dir)
        return dir;
    if (const char* state = std::getenv("XDG_STATE_HOME"); state && *state)
        return std::string(state) + "/daw-bridge/captures";
    const char* home = std::getenv("HOME");
    return std::string(home && *home ? home : "/tmp") + "/.local/state/daw-bridge/captures";
}

static void putLE(unsigned char* at, uint32_t value, int bytes)
{
    for (int i = 0; i < bytes; ++i)
        at[i] = (unsigned char)(value >> (8 * i));
}

struct Span {
    std::string file;
    uint32_t sampleRate = 0;
    int64_t timelineStartFrame = 0;
    uint64_t frames = 0;
};

class CaptureWriter {
public:
    // A WAV data chunk holds < 4 GiB; stay well below and continue in a new span.
    static constexpr uint64_t kMaxSpanFrames = (0xF0000000u / (4 * kChannels));

    CaptureWriter(std::string folder, std::string instance, std::string pluginFormat)
        : fFolder(std::move(folder)), fInstance(std::move(instance)), fPluginFormat(std::move(pluginFormat)) {}

    ~CaptureWriter() { closeSpan(); }

    // One block from the ring, its samples interleaved as the WAV holds them.
    void append(const BlockRecord& block, const std::vector<float>& interleaved)
    {
        if (block.retract != 0) {
            retract(block);
            return;
        }
        noteHeard(block);
        const bool continues = fFile != nullptr && !fSpans.empty() && fSpans.back().sampleRate == block.sampleRate
            && fSpans.back().timelineStartFrame + int64_t(fSpans.back().frames) == block.timelineFrame
            && fSpans.back().frames + block.frames <= kMaxSpanFrames;
        if (!continues && !openSpan(block))
            return;
        std::fwrite(interleaved.data(), sizeof(float), interleaved.size(), fFile);
        fSpans.back().frames += block.frames;
        fDirty = true;
    }

    void noteDropped(uint64_t droppedBlocks)
    {
        if (droppedBlocks != fDroppedBlocks)
            fDroppedBlocks = droppedBlocks, fDirty = true;
    }
    // preset: the Preset parameter at the press, which the daemon reads here to choose the request's prompt
    void noteRequest(const char* operation, double start, double end, const std::string& requestId, int preset)
    {
        char line[352];
        std::snprintf(line, sizeof line,
                      "{\"operation\": \"%s\", \"start\": %.6f, \"end\": %.6f, \"request_id\": \"%s\", "
                      "\"preset\": %d}", operation, start, end, requestId.c_str(), preset);
        fRequests.push_back(line);
        fDirty = true;
    }
    // What was captured at timeline frames [first, first + frames) at `rate`, the newest take where spans overlap;
    // covered[k] is 1 where the capture holds frame first + k (elsewhere stereo stays 0).
    void readBack(int64_t first, int64_t frames, uint32_t rate, std::vector<float>& stereo, std::vector<char>& covered)
    {
        stereo.assign(size_t(frames) * kChannels, 0.0f);
        covered.assign(size_t(frames), 0);
        if (fFile != nullptr)
            std::fflush(fFile);
        std::vector<float> piece;
        for (auto s = fSpans.rbegin(); s != fSpans.rend(); ++s) {
            const int64_t lo = std::max(first, s->timelineStartFrame);
            const int64_t hi = std::min(first + frames, s->timelineStartFrame + int64_t(s->frames));
            if (s->sampleRate != rate || hi <= lo)
                continue;
            FILE* f = std::fopen((fFolder + "/" + s->file).c_str(), "rb");
            if (f == nullptr)
                continue;
            piece.resize(size_t(hi - lo) * kChannels);
            std::fseek(f, long(44 + (lo - s->timelineStartFrame) * 4 * kChannels), SEEK_SET);
            const size_t got = std::fread(piece.data(), sizeof(float), piece.size(), f) / kChannels;
            std::fclose(f);
            for (size_t k = 0; k < got; ++k) {
                const size_t at = size_t(lo - first) + k;
                if (!covered[at])
                    covered[at] = 1, std::copy_n(&piece[k * kChannels], kChannels, &stereo[at * kChannels]);
            }
        }
    }

    // The host's transport (TransportMailbox): written when it changed, and at every read while it rolls (the capture
    // is written then anyway), so the daemon can tell from "observed" how far the cursor has moved since. Like the
    // reply port, not written alone: a host that only loads the plugin (a plugin scan) gets no capture folder.
    void noteTransport(const HostTransport& t)
    {
        if (t.observedNs == 0 || t.sampleRate == 0)
            return;
        const HostTransport& was = fTransport;
        if (t.playing || t.playing != was.playing || t.timelineFrame != was.timelineFrame || t.tempo != was.tempo
            || t.beatsPerBar != was.beatsPerBar || t.sampleRate != was.sampleRate)
            fTransport = t, fDirty = fDirty || fPublished;
    }

    void noteReplyPort(int port) { fReplyPort = port; }  // written with the first capture or request, not alone
    // The names this instance's project gave the plugin before (a JSON array, newest first): the daemon keeps the
    // prompt set for the track's plugin under the name it had then (a name is new each time the project opens).
    void noteEarlierNames(std::string json)
    {
        if (json != fEarlierNames)
            fEarlierNames = std::move(json), fDirty = true;
    }
    // The job this instance follows, as one JSON object (the background thread composes it).
    void noteJob(std::string json)
    {
        if (json != fJob)
            fJob = std::move(json), fDirty = true;
    }
#ifdef DAW_BRIDGE_RT_CHECK
    void noteAllocations(uint64_t count) { if (count != fAllocations) fAllocations = count, fDirty = true; }
#endif

    // Make everything appended so far readable: WAV sizes patched, data flushed, then the index replaced.
    void publish()
    {
        if (!fDirty || fFolder.empty())
            return;
        if (fPublished && access((fFolder + "/index.json").c_str(), F_OK) != 0)
            forgetDeletedSpans();
        if (fFile != nullptr) {
            patchHeader();
            std::fflush(fFile);
            keepWhatIsOnDisk();
        }
        if (!makeDirs(fFolder))
            return;
        std::string json = "{\n  \"format\": \"daw-bridge.capture/1\",\n  \"instance\": \"" + fInstance
            + "\",\n  \"plugin_format\": \"" + fPluginFormat + "\",\n  \"channels\": " + std::to_string(kChannels)
            + ",\n  \"sample_format\": \"float32\",\n  \"spans\": [";
        for (size_t i = 0; i < fSpans.size(); ++i) {
            const Span& s = fSpans[i];
            json += std::string(i ? "," : "") + "\n    {\"file\": \"" + s.file + "\", \"sample_rate\": "
                + std::to_string(s.sampleRate) + ", \"timeline_start_frame\": " + std::to_string(s.timelineStartFrame)
                + ", \"frames\": " + std::to_string(s.frames) + "}";
        }
        json += "\n  ],\n  \"dropped_blocks\": " + std::to_string(fDroppedBlocks) + ",\n  \"requests\": [";
        for (size_t i = 0; i < fRequests.size(); ++i)
            json += std::string(i ? ", " : "") + fRequests[i];
        json += "],\n  \"reply_port\": " + std::to_string(fReplyPort);
        if (fTransport.observedNs != 0)
            json += ",\n  \"transport\": " + transportJson();
        if (!fJob.empty())
            json += ",\n  \"job\": " + fJob;
        if (!fEarlierNames.empty())
            json += ",\n  \"was\": " + fEarlierNames;
#ifdef DAW_BRIDGE_RT_CHECK
        json += ",\n  \"rt_allocations\": " + std::to_string(fAllocations);
#endif
        json += "\n}\n";
        const std::string temporary = fFolder + "/.index.json.tmp";
        if (FILE* f = std::fopen(temporary.c_str(), "wb")) {
            const bool written = std::fwrite(json.data(), 1, json.size(), f) == json.size();
            if (std::fclose(f) == 0 && written)
                fPublished = std::rename(temporary.c_str(), (fFolder + "/index.json").c_str()) == 0 || fPublished;
        }
        fDirty = false;
    }

private:
    // A stretch of timeline played at one tempo and signature (seconds), as the blocks came.
    struct Heard {
        double start, end, tempo;
        float beatsPerBar;
    };
    static constexpr size_t kHeardLimit = 128;  // the newest stretches (a locate or a tempo change starts one)

    void noteHeard(const BlockRecord& block)
    {
        if (block.tempo <= 0.0)
            return;
        const double start = double(block.timelineFrame) / block.sampleRate;
        const double end = double(block.timelineFrame + int64_t(block.frames)) / block.sampleRate;
        if (!fHeard.empty()) {
            Heard& last = fHeard.back();
            if (last.tempo == block.tempo && last.beatsPerBar == block.beatsPerBar && std::fabs(last.end - start) < 1e-6) {
                last.end = end;
                return;
            }
        }
        if (fHeard.size() == kHeardLimit)
            fHeard.erase(fHeard.begin());
        fHeard.push_back(Heard{start, end, block.tempo, block.beatsPerBar});
    }

    // {"playing", "position" (timeline seconds at "observed"), "tempo" (0: none given), "beats_per_bar", "observed"
    // (wall-clock seconds since the epoch), "heard": [[start, end, tempo, beats_per_bar], ...] oldest first}
    std::string transportJson() const
    {
        const HostTransport& t = fTransport;
        char text[256];
        std::snprintf(text, sizeof text, "{\"playing\": %s, \"position\": %.6f, \"tempo\": %.6f, "
                      "\"beats_per_bar\": %.6g, \"observed\": %.6f, \"heard\": [", t.playing ? "true" : "false",
                      double(t.timelineFrame) / t.sampleRate, t.tempo, double(t.beatsPerBar),
                      double(t.observedNs) / 1e9);
        std::string json = text;
        for (size_t i = 0; i < fHeard.size(); ++i) {
            std::snprintf(text, sizeof text, "%s[%.6f, %.6f, %.6f, %.6g]", i ? ", " : "", fHeard[i].start,
                          fHeard[i].end, fHeard[i].tempo, double(fHeard[i].beatsPerBar));
            json += text;
        }
        return json + "]}";
    }

    // The index written before is gone: the folder was deleted under the running plugin (space freed, a clean-up).
    // The spans whose files went with it are no longer the capture's; an index naming them made every range they
    // touched unreadable for the daemon, played again or not. The open span, if gone too, ends: the next block
    // starts a new one.
    void forgetDeletedSpans()
    {
        const auto gone = [this](const Span& s) { return access((fFolder + "/" + s.file).c_str(), F_OK) != 0; };
        if (fFile != nullptr && gone(fSpans.back()))
            closeSpan();
        fSpans.erase(std::remove_if(fSpans.begin(), fSpans.end(), gone), fSpans.end());
    }

    // The open span's last frames were not played where the host said (see run): they go, and the span with them
    // when nothing else is left of it.
    void retract(const BlockRecord& block)
    {
        if (fFile == nullptr || fSpans.back().timelineStartFrame + int64_t(fSpans.back().frames)
                                    != block.timelineFrame + int64_t(block.retract))
            return;
        shortenSpan(fSpans.back().frames - std::min<uint64_t>(block.retract, fSpans.back().frames));
    }

    // The open span keeps its first `frames` frames (none: it goes, file and all).
    void shortenSpan(uint64_t frames)
    {
        Span& span = fSpans.back();
        span.frames = frames;
        std::fseek(fFile, long(44 + frames * 4 * kChannels), SEEK_SET);
        fDirty = true;
        if (frames == 0) {
            closeSpan();
            std::remove((fFolder + "/" + span.file).c_str());
            fSpans.pop_back();
        }
    }

    // A full disk (or the host's file size limit) took only part of the open span's audio: the index names just what
    // is on disk (it named every frame written, and the daemon read past the file's end), and the span ends there;
    // the next block starts another once there is room.
    void keepWhatIsOnDisk()
    {
        struct stat file;
        if (fstat(fileno(fFile), &file) != 0)
            return;
        const uint64_t bytes = uint64_t(std::max<off_t>(file.st_size, 44)) - 44;
        if (bytes / (4 * kChannels) >= fSpans.back().frames)
            return;
        shortenSpan(bytes / (4 * kChannels));
        closeSpan();
    }

    bool openSpan(const BlockRecord& block)
    {
        closeSpan();
        if (!makeDirs(fFolder))
            return false;
        char name[32];
        std::snprintf(name, sizeof name, "span-%06u.wav", ++fSpansOpened);  // never a forgotten span's name again
        fFile = std::fopen((fFolder + "/" + name).c_str(), "w+b");
        if (fFile == nullptr)
            return false;
        fSpans.push_back(Span{name, block.sampleRate, block.timelineFrame, 0});
        patchHeader();
        return true;
    }

    void closeSpan()
    {
        if (fFile == nullptr)
            return;
        patchHeader();
        std::fclose(fFile);
        fFile = nullptr;
    }

    // 44-byte header of a WAVE_FORMAT_IEEE_FLOAT file whose data chunk holds the span's frames so far.
    void patchHeader()
    {
        const Span& s = fSpans.back();
        const uint32_t blockAlign = 4 * kChannels;
        const uint32_t dataBytes = uint32_t(s.frames * blockAlign);
        unsigned char h[44];
        std::memcpy(h, "RIFF", 4);
        putLE(h + 4, 36 + dataBytes, 4);
        std::memcpy(h + 8, "WAVEfmt ", 8);
        putLE(h + 16, 16, 4);
        putLE(h + 20, 3, 2);  // IEEE float
        putLE(h + 22, kChannels, 2);
        putLE(h + 24, s.sampleRate, 4);
        putLE(h + 28, s.sampleRate * blockAlign, 4);
        putLE(h + 32, blockAlign, 2);
        putLE(h + 34, 32, 2);
        std::memcpy(h + 36, "data", 4);
        putLE(h + 40, dataBytes, 4);
        const long end = std::ftell(fFile);
        std::fseek(fFile, 0, SEEK_SET);
        std::fwrite(h, 1, sizeof h, fFile);
        std::fseek(fFile, end > 44 ? end : 44, SEEK_SET);
    }

    const std::string fFolder, fInstance, fPluginFormat;
    std::vector<Span> fSpans;
    unsigned fSpansOpened = 0;
    std::vector<std::string> fRequests;
    std::vector<Heard> fHeard;
    HostTransport fTransport;
    std::string fJob;
    std::string fEarlierNames;  // see noteEarlierNames ("": none)
    int fReplyPort = 0;
    FILE* fFile = nullptr;
    uint64_t fDroppedBlocks = 0;
#ifdef DAW_BRIDGE_RT_CHECK
    uint64_t fAllocations = 0;
#endif
    bool fDirty = false;
    bool fPublished = false;  // an index.json was written
};

// ---------------------------------------------------------------------------------------------------------------------

enum Parameters : uint32_t {
    kInpaint, kExtend, kCancel,  // presses (off to on): a request to the daemon
    kMarkIn, kMarkOut,           // presses: the host's position at the press becomes the range's start / end
    kRangeStart, kRangeEnd,      // seconds of host timeline (used until both marks are set, and again once changed)
    kDaemonPort,                 // the daemon's OSC port on 127.0.0.1
    kPreset,                     // 0 = the instance's own prompt (daw-bridge plugin prompt), n = the daemon's preset n
    kVariant,                    // what plays: 0 = the input, 1..n = a delivered variant across its span
    kCompare,                    // momentary A/B: while held, the original if a variant is chosen, else variant 1
    kMatchLoudness,              // variants play at the gain that matches the original's loudness over their span
    kProgress, kState, kVariants,  // outputs: the job's progress (0..1), its state (JobState), variants loaded
    kMarkedStart, kMarkedEnd,    // outputs: the marked range in seconds (0 and 0 until both marks are set)
    kParameterCount
};
static constexpr uint32_t kFirstOutput = kProgress;

enum Requests : uint32_t { kRequestInpaint = 1, kRequestExtend = 2, kRequestCancel = 4 };
// The press parameters, as bits of 1 << index (see fPressGate).
static constexpr uint32_t kPresses = (1u << kInpaint) | (1u << kExtend) | (1u << kCancel) | (1u << kMarkIn)
    | (1u << kMarkOut);
// fPressGate's word: the armed presses (bits 0-7), the presses a restore has yet to set (bits 8-15), and how many
// restores there have been (bits 32-63). One word, so that arming a press and a restore beginning cannot interleave.
static constexpr uint64_t kPending = 8, kRestore = uint64_t(1) << 32;
static_assert(std::atomic<uint64_t>::is_always_lock_free, "the audio thread may take no lock");
enum Marks : uint32_t { kMarkStart = 1, kMarkEnd = 2 };

// The State output parameter; stable numbers, documented in the README.
enum JobState : int {
    kIdle = 0, kSent = 1, kWorking = 2, kReady = 3, kFailed = 4, kCancelled = 5, kRefused = 6, kLoadFailed = 7,
    kNoAnswer = 8, kChosen = 9, kDiscarded = 10,
};
static const char* const kJobStateNames[] = {"idle", "sent", "working", "ready", "failed", "cancelled", "refused",
                                             "load_failed", "no_answer", "chosen", "discarded"};

// What the producer decided about the job outside the host (/bridge/decided: pads, voice, CLI), as run() reads it:
// n >= 0 plays variant n whatever the Variant parameter says, until that parameter next changes.
static constexpr int kNoDecision = -1;  // the Variant parameter chooses
static constexpr int kForgotten = -2;   // discarded: the original plays, whatever the parameter says

// Every parameter as the host sees it, in Parameters order. Presses are rising edges of plain on/off parameters, not
// DPF triggers: DPF 1.6's VST3 wrapper drops a trigger a JUCE-based host (pedalboard, DawDreamer) sets, and
// re-applies one each block in other hosts.
struct ParameterSpec {
    uint32_t hints;
    const char *name, *symbol, *unit;
    float defaultValue, minimum, maximum;
};
static constexpr uint32_t kPress = kParameterIsAutomatable | kParameterIsBoolean;
static constexpr uint32_t kSwitch = kParameterIsAutomatable | kParameterIsBoolean | kParameterIsInteger;
static constexpr uint32_t kWhole = kParameterIsAutomatable | kParameterIsInteger;
static const ParameterSpec kParameterSpecs[kParameterCount] = {
    {kPress, "Inpaint", "inpaint", "", 0, 0, 1},
    {kPress, "Extend", "extend", "", 0, 0, 1},
    {kPress, "Cancel", "cancel", "", 0, 0, 1},
    {kPress, "Mark in", "markin", "", 0, 0, 1},
    {kPress, "Mark out", "markout", "", 0, 0, 1},
    {kParameterIsAutomatable, "Range start", "start", "s", 0, 0, 36000},
    {kParameterIsAutomatable, "Range end", "end", "s", 0, 0, 36000},
    {kWhole, "Daemon OSC port", "port", "", 9010, 1, 65535},
    {kWhole, "Preset", "preset", "", 0, 0, 16},
    {kWhole, "Variant", "variant", "", 0, 0, 16},
    {kSwitch, "A/B", "ab", "", 0, 0, 1},
    {kSwitch, "Match loudness", "match", "", 0, 0, 1},
    {kParameterIsOutput, "Progress", "progress", "", 0, 0, 1},
    {kParameterIsOutput | kParameterIsInteger, "State", "state", "", 0, 0, float(kDiscarded)},
    {kParameterIsOutput | kParameterIsInteger, "Variants loaded", "variants", "", 0, 0, 16},
    {kParameterIsOutput, "Marked start", "marked_start", "s", 0, 0, 36000},
    {kParameterIsOutput, "Marked end", "marked_end", "s", 0, 0, 36000},
};

// Delivered variants as run() reads them: built and freed by the background thread only, never changed once
// published.
static constexpr int kMatched = 1 << 8;  // a source (see sourceAt) played at its loudness-matching gain

struct Playback {
    std::vector<dawbridge::Variant> variants;  // variant parameter v plays variants[v - 1]
    uint32_t sampleRate = 0;  // every variant's: the set plays only while the host runs at this rate
};

// The length of the well-formed UTF-8 sequence at text[at] (RFC 3629: no overlong form, no surrogate), else 0.
static size_t utf8Length(const std::string& text, size_t at)
{
    const auto byte = [&](size_t i) { return i < text.size() ? (unsigned char)text[i] : 0u; };
    const unsigned lead = byte(at);
    const auto follows = [&](size_t n, unsigned lo, unsigned hi) {  // the second byte in [lo, hi], the rest 80..BF
        if (byte(at + 1) < lo || byte(at + 1) > hi)
            return size_t(0);
        for (size_t i = 2; i < n; ++i)
            if ((byte(at + i) & 0xC0) != 0x80)
                return size_t(0);
        return n;
    };
    if (lead < 0x80) return 1;
    if (lead >= 0xC2 && lead <= 0xDF) return follows(2, 0x80, 0xBF);
    if (lead == 0xE0) return follows(3, 0xA0, 0xBF);
    if (lead == 0xED) return follows(3, 0x80, 0x9F);
    if (lead >= 0xE1 && lead <= 0xEF) return follows(3, 0x80, 0xBF);
    if (lead == 0xF0) return follows(4, 0x90, 0xBF);
    if (lead >= 0xF1 && lead <= 0xF3) return follows(4, 0x80, 0xBF);
    if (lead == 0xF4) return follows(4, 0x80, 0x8F);
    return 0;
}

// A JSON string of `text`: control characters become spaces and bytes that are not UTF-8 '?' (a message's text or
// a path from a datagram: one such byte made index.json unreadable to any JSON reader, the daemon's included).
static std::string jsonString(const std::string& text)
{
    std::string out = "\"";
    for (size_t at = 0; at < text.size();) {
        const char c = text[at];
        const size_t length = utf8Length(text, at);
        if (length == 0)
            out += '?', at += 1;
        else if (length > 1)
            out.append(text, at, length), at += length;
        else if (c == '"' || c == '\\')
            out += '\\', out += c, at += 1;
        else if ((unsigned char)c < 0x20)
            out += ' ', at += 1;
        else
            out += c, at += 1;
    }
    return out + "\"";
}

class DawBridgePlugin : public Plugin {
public:
    DawBridgePlugin()
        : Plugin(kParameterCount, 0, 1),
          fUsesSongPosition(std::strcmp(getPluginFormatName(), "CLAP") == 0),
          fRestoreSetsPresses(std::strcmp(getPluginFormatName(), "LV2") != 0),
          fInstance(newInstanceName()),
          fWriter(captureRoot() + "/" + fInstance, fInstance, getPluginFormatName())
    {
#ifdef DAW_BRIDGE_RT_CHECK
        const char* selfTest = std::getenv("DAW_BRIDGE_RT_CHECK_SELFTEST");
        fAllocateInRun = selfTest != nullptr && *selfTest == '1';
#endif
        for (uint32_t i = 0; i < kParameterCount; ++i)
            fValues[i].store(kParameterSpecs[i].defaultValue);
        fPressGate.store(fRestoreSetsPresses ? kPresses : 0);  // see fPressGate
        openReplySocket();
        fThread = std::thread([this] { backgroundLoop(); });
    }

    ~DawBridgePlugin() override
    {
        fQuit.store(true, std::memory_order_release);
        fThread.join();
        if (fSocket >= 0)
            close(fSocket);
        delete fPlayback.load();  // run() is no longer called: nothing reads it
        for (const auto& retired : fRetired)
            delete retired.first;
    }

protected:
    const char* getLabel() const override { return "DawBridge"; }
    const char* getDescription() const override
    {
        return "Captures what the track plays (indexed by the host's timeline) for the daw-bridge daemon, sends it "
               "inpaint/extend requests, and plays the delivered variants in place; otherwise passes audio through "
               "unchanged.";
    }
    const char* getMaker() const override { return "daw-bridge"; }
    const char* getLicense() const override { return "MIT"; }
    uint32_t getVersion() const override { return d_version(0, 2, 0); }
    int64_t getUniqueId() const override { return d_cconst('d', 'w', 'b', 'r'); }

    // The host starts processing anew (after a bypass, a device restart, a rate change): the next block continues no
    // earlier one, and nothing heard before is faded from (a set heard before is at the rate it was loaded at, perhaps
    // not the host's now, and where the last block was heading is no longer where the host goes).
    void activate() override
    {
        fLastRolled.playing = false;
        fFresh = true;
    }

    void initAudioPort(bool input, uint32_t index, AudioPort& port) override
    {
        port.groupId = kPortGroupStereo;
        Plugin::initAudioPort(input, index, port);
    }

    void initParameter(uint32_t index, Parameter& parameter) override
    {
        const ParameterSpec& spec = kParameterSpecs[index];
        parameter.hints = spec.hints;
        parameter.name = spec.name;
        parameter.symbol = spec.symbol;
        parameter.unit = spec.unit;
        parameter.ranges = ParameterRanges(spec.defaultValue, spec.minimum, spec.maximum);
    }

    // The project's copy of the job (the host's thread; the background thread keeps fSaved current).
    void initState(uint32_t, State& state) override
    {
        state.key = "job";
        state.label = "Job";
        state.defaultValue = "";
        state.hints = kStateIsOnlyForDSP;
    }

    String getState(const char* key) const override
    {
        const std::lock_guard<std::mutex> lock(fSavedLock);
        return String(std::strcmp(key, "job") == 0 ? fSaved.c_str() : "");
    }

    // Reopening the project: the background thread reloads the saved job's variants (never this thread).
    void setState(const char* key, const char* value) override
    {
        // every format's host restores the plugin's state before its parameters (DPF writes it first): a press the
        // project saved held on is no press (see fPressGate)
        const uint64_t pending = fRestoreSetsPresses ? uint64_t(kPresses) << kPending : 0;
        uint64_t gate = fPressGate.load(std::memory_order_relaxed);
        while (!fPressGate.compare_exchange_weak(gate, ((gate & ~(kRestore - 1)) + kRestore) | pending,
                                                 std::memory_order_relaxed))
            ;  // a restore begins: nothing armed, and (VST3, CLAP) every press to be set
        if (std::strcmp(key, "job") != 0 || value == nullptr || *value == '\0')
            return;
        const std::lock_guard<std::mutex> lock(fSavedLock);
        fRestore = value;
        fSaved = value;
    }

    float getParameterValue(uint32_t index) const override
    {
        return index < kParameterCount ? fValues[index].load(std::memory_order_relaxed) : 0.0f;
    }

    // A CLAP or LV2 host hands on whatever value it is given (automation, a script): NaN leaves the parameter as it
    // was, anything else is held to its range. A NaN range edge once went into index.json as "nan", and no JSON
    // reader could read the capture after that; a port of 70000 sent to port 4464.
    static float withinRange(uint32_t index, float value, float before) noexcept
    {
        if (std::isnan(value))
            return before;
        return std::clamp(value, kParameterSpecs[index].minimum, kParameterSpecs[index].maximum);
    }

    // May be called on the audio thread: atomics only.
    void setParameterValue(uint32_t index, float value) override
    {
        if (index >= kFirstOutput)  // outputs are the plugin's own to set
            return;
        value = withinRange(index, value, fValues[index].load(std::memory_order_relaxed));
        const float before = fValues[index].exchange(value, std::memory_order_relaxed);
        // a pad's press: off to on (its release sends off), once the host has let go of it since it restored a state
        const uint32_t bit = 1u << index;
        uint64_t gate = fPressGate.load(std::memory_order_relaxed);
        if (kPresses & bit) {  // set: no longer pending; set off: let go of, so armed
            const uint64_t clear = uint64_t(bit) << kPending, arm = value <= 0.5f ? bit : 0;
            while ((gate & clear || (gate & arm) != arm)
                   && !fPressGate.compare_exchange_weak(gate, (gate & ~clear) | arm, std::memory_order_relaxed))
                ;
        }
        const bool pressed = value > 0.5f && before <= 0.5f && (gate & bit);
        if (index <= kCancel && pressed)
            fRequests.fetch_or(bit, std::memory_order_release);
        else if ((index == kMarkIn || index == kMarkOut) && pressed)
            fMarks.fetch_or(index == kMarkIn ? kMarkStart : kMarkEnd, std::memory_order_relaxed);
        else if (index == kVariant && value != before) {
            int decided = fDecided.load(std::memory_order_relaxed);  // the host's choice takes over from a decision
            if (decided >= 0)
                fDecided.compare_exchange_strong(decided, kNoDecision, std::memory_order_relaxed);
        } else if ((index == kRangeStart || index == kRangeEnd) && value != before) {
            // the range set last wins: the marks count again once both are pressed anew
            fMarked.store(false, std::memory_order_relaxed);
            fMarkIn.store(-1.0, std::memory_order_relaxed);
            fMarkOut.store(-1.0, std::memory_order_relaxed);
        }
    }

    void run(const float** inputs, float** outputs, uint32_t frames) override
    {
#ifdef DAW_BRIDGE_RT_CHECK
        tInRun = true;
        if (fAllocateInRun) {
            int* volatile allocated = new int(0);  // the check's own check: this must be counted (volatile: a
            delete allocated;                      // new/delete pair may otherwise be optimised away)
        }
#endif
        armReleasedPresses(frames);
        const TimePosition& time = getTimePosition();
        const bool playing = time.playing && frames > 0;
        uint32_t marks = fMarks.load(std::memory_order_relaxed);  // a plain load: the exchange's lock after a press only
        if (marks != 0)
            marks = fMarks.exchange(0, std::memory_order_relaxed);
        const int64_t firstFrame = timelineFrame(time);
        if (marks)
            mark(marks, firstFrame);
        const bool bbt = hasTempo(time);
        const BlockRecord block{firstFrame, frames, uint32_t(getSampleRate()), bbt ? time.bbt.beatsPerMinute : 0.0,
                                bbt ? time.bbt.beatsPerBar : 0.0f};
        HostTransport seen{firstFrame, 0, block.tempo, block.beatsPerBar, block.sampleRate, time.playing};
        if (time.playing || !seen.sameAs(fLastTransport)) {  // stopped and unchanged: nothing new to tell
            // the wall clock is read through the vDSO (no system call): the daemon moves the cursor on from it
            seen.observedNs = std::chrono::duration_cast<std::chrono::nanoseconds>(
                std::chrono::system_clock::now().time_since_epoch()).count();
            fHostTransport.write(seen);
            fLastTransport = seen;
        }
        // capture first: when the host processes in place, outputs[c] == inputs[c] and playback overwrites them.
        // A host rolling without moving played nothing at that place: a CLAP host's pre-roll, whose negative song
        // position DPF 1.6 reports as bar 1 (frame 0) block after block. Each such block was a span of its own
        // (hundreds per count-in, filling the heard list) and the last stood for the song's first frames: the first
        // is taken back and the rest are not captured (nor the song's own first block, which looks the same).
        // Nor is a host playing backwards (Ardour's reverse play; LV2 calls it rolling), each block one block before
        // the last: each was a span of its own, a newer take of its frames holding them reversed.
        const int64_t last = fLastRolled.block.timelineFrame;
        const bool rolled = playing && fLastRolled.playing;
        const bool held = rolled && firstFrame == last;
        const int64_t continued = last + int64_t(fLastRolled.block.frames);  // where it began had the host rolled on
        const bool backwards = rolled && (firstFrame + int64_t(frames) == last
                                          || firstFrame + int64_t(fLastRolled.block.frames) == last);
        if (held && fLastRolled.pushed) {
            BlockRecord taken = fLastRolled.block;
            taken.frames = 0, taken.retract = fLastRolled.block.frames;
            if (!fRing.push(inputs, taken))
                fDroppedBlocks.fetch_add(1, std::memory_order_relaxed);
        }
        // before that, the play position jumped back (a loop's wrap, a locate back while rolling): see below. Not
        // forward: a host that skipped a cycle (an xrun) is heard as such.
        const bool jumped = rolled && !held && !backwards && firstFrame < continued;
        const bool pushed = playing && !held && !backwards && fRing.push(inputs, block);
        if (playing && !held && !backwards && !pushed)
            fDroppedBlocks.fetch_add(1, std::memory_order_relaxed);
        fLastRolled = {block, playing, pushed};

        const Playback* loaded = fPlayback.load(std::memory_order_seq_cst);
        // a set loaded at another rate than the host's now would play at the wrong place and pitch: the input plays
        const Playback* playback = loaded && loaded->sampleRate == block.sampleRate ? loaded : nullptr;
        const int variants = playback ? int(playback->variants.size()) : 0;
        const int decided = fDecided.load(std::memory_order_relaxed);
        int chosen = decided == kNoDecision ? int(std::lround(fValues[kVariant].load(std::memory_order_relaxed)))
                                            : std::max(decided, 0);
        if (chosen < 0 || chosen > variants)
            chosen = 0;
        if (fValues[kCompare].load(std::memory_order_relaxed) > 0.5f)  // A/B held: the other side
            chosen = chosen > 0 ? 0 : std::min(variants, 1);
        if (chosen > 0 && fValues[kMatchLoudness].load(std::memory_order_relaxed) > 0.5f)
            chosen |= kMatched;
        // a fade begun at a higher rate (the host deactivated mid-fade and came back slower) is at most a whole
        // fade now: turned round below it would wrap to 4e9 frames, and its gain would go below 0
        fFadeLeft = std::min(fFadeLeft, fadeFrames());
        const bool fresh = std::exchange(fFresh, false);
        if (!playing || fresh) {  // nothing rolls, or the first block since the host activated the plugin: no fade
            fHeard = chosen, fFadingFrom = chosen, fFadeLeft = 0, fFadeOffset = 0;
            fHeardSet = fFadingSet = playback;
        } else if (jumped && fHeard != 0) {
            // a variant plays and the play position jumps back: the host declicks its own audio there (Ardour fades a
            // loop's wrap), a variant played in its place jumped (a click at each wrap of a loop over the range, where
            // the original had none). Faded from where it was heading to where it is now, as a switch is.
            fFadingFrom = fHeard, fFadingSet = fHeardSet, fFadeLeft = fadeFrames();
            fFadeOffset = continued - firstFrame;
            fHeard = chosen, fHeardSet = playback;
        } else if ((playback != fHeardSet && fHeard != 0) || (chosen != fHeard && fFadeLeft == 0)) {
            // a switch, or a new job's set delivered while a variant of the old one plays (that jumped: a click)
            fFadingFrom = fHeard, fFadingSet = fHeardSet, fFadeLeft = fadeFrames(), fFadeOffset = 0;
            fHeard = chosen, fHeardSet = playback;
        } else if (chosen != fHeard && chosen == fFadingFrom && fFadingSet == playback && fFadeOffset == 0) {
            // back to the source being faded from, mid-fade (automation or A/B faster than 5 ms): the fade turns
            // round where it is
            std::swap(fHeard, fFadingFrom);
            fFadeLeft = fadeFrames() - fFadeLeft;
            fHeardSet = playback;
        } else {
            // any other switch mid-fade waits for the fade's end (it restarted from the new source: a click); a
            // jump mid-fade leaves the source faded from where it was heading
            fHeardSet = playback;
            if (jumped)
                fFadeOffset += continued - firstFrame;
        }
        // before any sample of it is read: the set faded from stays allocated while this says so (see retire); a
        // locked store, so only when it changes
        if (const Playback* fading = fFadeLeft > 0 ? fFadingSet : nullptr; fading != fToldFading) {
            fFadingFromSet.store(fading, std::memory_order_seq_cst);
            fToldFading = fading;
        }

        if (!playing || (fHeard == 0 && fFadeLeft == 0))
            passThrough(inputs, outputs, 0, frames);
        else
            play(playback, inputs, outputs, frames, firstFrame);
        fHearingInput.store(fHeard == 0 && fFadeLeft == 0, std::memory_order_release);  // no variant read now
        if (loaded != nullptr)  // this block no longer reads the Playback it loaded (once set, never null again)
            fRunEpoch.fetch_add(1, std::memory_order_seq_cst);
#ifdef DAW_BRIDGE_RT_CHECK
        tInRun = false;
#endif
    }

private:
    // Frames [begin, end) of the input to the output (nothing to do when the host processes in place).
    static void passThrough(const float** inputs, float** outputs, uint32_t begin, uint32_t end) noexcept
    {
        for (uint32_t c = 0; c < kChannels; ++c)
            if (outputs[c] != inputs[c] && end > begin)
                std::memmove(outputs[c] + begin, inputs[c] + begin, sizeof(float) * (end - begin));
    }

    // Audio thread: the presses that are off now may be pressed, once the instance has run a while (fQuietFrames)
    // since it began or last restored a state, each once that restore has set it (see fPressGate).
    void armReleasedPresses(uint32_t frames) noexcept
    {
        uint64_t gate = fPressGate.load(std::memory_order_relaxed);
        if ((gate & kPresses) == kPresses)
            return;
        if (uint32_t(gate >> 32) != fRestoresSeen)
            fRestoresSeen = uint32_t(gate >> 32), fQuietFrames = 0;
        // 50 ms: a host sets the saved control values before its first blocks, or with them (Ardour inserting the
        // plugin, then a producer's press 0.2 s on, keeps it)
        const uint32_t quiet = uint32_t(getSampleRate() / 20);
        if (fQuietFrames < quiet) {
            fQuietFrames += std::min(frames, quiet);
            return;
        }
        uint32_t released = 0;
        for (uint32_t index = 0; index < kParameterCount; ++index)
            if ((kPresses & (1u << index)) && fValues[index].load(std::memory_order_relaxed) <= 0.5f)
                released |= 1u << index;
        released &= ~uint32_t(gate >> kPending);
        // fails if a restore began since the load above (or a press was set): the next block looks again
        if (released & ~uint32_t(gate))
            fPressGate.compare_exchange_strong(gate, gate | released, std::memory_order_relaxed);
    }

    // Audio thread: the host's position when a mark was pressed (the block it arrives in) becomes a range edge, in
    // seconds at the rate it was marked at (the project's rate may change before the range is sent).
    void mark(uint32_t marks, int64_t frame) noexcept
    {
        const double seconds = double(frame) / getSampleRate();
        if (marks & kMarkStart)
            fMarkIn.store(seconds, std::memory_order_relaxed);
        if (marks & kMarkEnd)
            fMarkOut.store(seconds, std::memory_order_relaxed);
        const double in = fMarkIn.load(std::memory_order_relaxed), out = fMarkOut.load(std::memory_order_relaxed);
        if (in >= 0.0 && out >= 0.0 && in != out) {
            fValues[kMarkedStart].store(float(std::min(in, out)), std::memory_order_relaxed);
            fValues[kMarkedEnd].store(float(std::max(in, out)), std::memory_order_relaxed);
            fMarked.store(true, std::memory_order_release);
        }
    }

    uint32_t fadeFrames() const noexcept { return std::max(1u, uint32_t(getSampleRate() * 0.005)); }

    // What `source` (0 = the input, n = variant n, | kMatched: at its loudness-matching gain) sounds at timeline frame
    // t: the variant inside its span, faded in and out over its first and last 5 ms, the input elsewhere. Exactly
    // the input or exactly the variant (times its gain when matched) where no fade is.
    static float sourceAt(const Playback* playback, int source, int64_t t, uint32_t c, float input,
                          uint32_t fade) noexcept
    {
        const int which = source & ~kMatched;
        if (which == 0 || playback == nullptr || size_t(which) > playback->variants.size())
            return input;
        const dawbridge::Variant& v = playback->variants[size_t(which - 1)];
        const int64_t k = t - v.timelineFrame;
        if (k < 0 || k >= v.frames)
            return input;
        const float sample = v.stereo[c][size_t(k)] * ((source & kMatched) ? v.gain : 1.0f);
        const int64_t edge = std::min(k + 1, v.frames - k);
        if (edge >= int64_t(fade))
            return sample;
        const float gain = float(edge) / float(fade);
        return input + (sample - input) * gain;
    }

    // The fade between two sources (a variant switch, or the same variant of a new set) sample by sample, then the
    // rest of the block as heard. `playback` (the set heard) is null only when the input is heard.
    void play(const Playback* playback, const float** inputs, float** outputs, uint32_t frames,
              int64_t firstFrame) noexcept
    {
        const uint32_t fade = fadeFrames();
        uint32_t i = 0;
        for (; i < frames && fFadeLeft > 0; ++i, --fFadeLeft) {
            const int64_t t = firstFrame + i;
            const float gain = 1.0f - float(fFadeLeft) / float(fade);  // of the new source
            for (uint32_t c = 0; c < kChannels; ++c) {
                const float input = inputs[c][i];  // read before writing: outputs may be the inputs
                const float to = sourceAt(playback, fHeard, t, c, input, fade);
                const float from = sourceAt(fFadingSet, fFadingFrom, t + fFadeOffset, c, input, fade);
                outputs[c][i] = from + (to - from) * gain;
            }
        }
        if (playback == nullptr || fHeard == 0)
            passThrough(inputs, outputs, i, frames);
        else
            render(*playback, fHeard, inputs, outputs, i, frames, firstFrame, fade);
    }

    // Frames [begin, end) of the block as `source` sounds there (what sourceAt gives): the input copied outside the
    // variant's span, the variant copied (times its gain when matched) inside it, and only its edge fades mixed
    // sample by sample.
    static void render(const Playback& playback, int source, const float** inputs, float** outputs, uint32_t begin,
                       uint32_t end, int64_t firstFrame, uint32_t fade) noexcept
    {
        const int which = source & ~kMatched;
        if (which == 0) {
            passThrough(inputs, outputs, begin, end);
            return;
        }
        const dawbridge::Variant& v = playback.variants[size_t(which - 1)];
        const int64_t at = v.timelineFrame - firstFrame;  // the block's frame where the variant's first frame plays
        const auto within = [](int64_t frame, int64_t lo, int64_t hi) { return uint32_t(std::clamp(frame, lo, hi)); };
        // the span's frames in the block: [spanBegin, spanEnd); unfaded among them: [whole, wholeEnd)
        const uint32_t spanBegin = within(at, begin, end), spanEnd = within(at + v.frames, spanBegin, end);
        const uint32_t whole = within(at + fade - 1, spanBegin, spanEnd);
        const uint32_t wholeEnd = within(at + v.frames - fade + 1, whole, spanEnd);
        passThrough(inputs, outputs, begin, spanBegin);
        passThrough(inputs, outputs, spanEnd, end);
        const float gain = (source & kMatched) ? v.gain : 1.0f;
        for (uint32_t c = 0; c < kChannels; ++c) {
            for (uint32_t i = spanBegin; i < whole; ++i)
                outputs[c][i] = sourceAt(&playback, source, firstFrame + i, c, inputs[c][i], fade);
            const float* from = v.stereo[c].data() + (int64_t(whole) - at);
            float* out = outputs[c] + whole;
            for (size_t i = 0, count = wholeEnd - whole; i < count; ++i)  // size_t: the loop vectorises
                out[i] = from[i] * gain;
            for (uint32_t i = wholeEnd; i < spanEnd; ++i)
                outputs[c][i] = sourceAt(&playback, source, firstFrame + i, c, inputs[c][i], fade);
        }
    }

    // A tempo and signature a DAW could play (a host's infinite or NaN tempo once went into index.json as "inf"):
    // else the block counts as one without a bar/beat position.
    static bool hasTempo(const TimePosition& time) noexcept
    {
        return time.bbt.valid && time.bbt.beatsPerMinute >= 1.0 && time.bbt.beatsPerMinute <= 1000.0
            && time.bbt.beatsPerBar > 0.0f && time.bbt.beatsPerBar <= 1000.0f && time.bbt.ticksPerBeat > 0.0;
    }

    // CLAP's reported frame is the host's steady counter, not the song position (DPF 1.6): derive it from the
    // transport's musical position instead (exact for a constant tempo).
    int64_t timelineFrame(const TimePosition& time) const noexcept
    {
        if (fUsesSongPosition && hasTempo(time)) {
            const double beats = (time.bbt.bar - 1) * double(time.bbt.beatsPerBar) + (time.bbt.beat - 1)
                + time.bbt.tick / time.bbt.ticksPerBeat;
            return int64_t(std::llround(beats * 60.0 / time.bbt.beatsPerMinute * getSampleRate()));
        }
        return int64_t(time.frame);
    }

    // Unique among this process's instances, and across processes by the pid. The counter is one per loaded binary,
    // and a host may load the LV2 and the VST3 (or the CLAP) into one process: the format keeps their names apart.
    // A name whose folder exists is never taken: the counter starts again when the host unloads the binary (its last
    // instance removed), and a pid comes back after a reboot, and the new instance wrote over that older capture.
    static std::string newInstanceName()
    {
        static std::atomic<uint32_t> counter{0};
        std::string format = getPluginFormatName();
        for (char& c : format)
            c = char(std::tolower((unsigned char)c));
        const std::string root = captureRoot() + "/";
        for (;;) {
            const std::string name = std::to_string(getpid()) + "-" + format + "-"
                + std::to_string(counter.fetch_add(1) + 1);
            struct stat existing;
            if (stat((root + name).c_str(), &existing) != 0)  // none there (or none this process could see)
                return name;
        }
    }

    // -----------------------------------------------------------------------------------------------------------------
    // Background thread.

    // The instance's own UDP socket on 127.0.0.1: commands leave from it, and its port is the reply_port they name.
    void openReplySocket()
    {
        fSocket = socket(AF_INET, SOCK_DGRAM, 0);
        if (fSocket < 0)
            return;
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t length = sizeof address;
        if (bind(fSocket, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0
            || getsockname(fSocket, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
            close(fSocket);
            fSocket = -1;
            return;
        }
        fcntl(fSocket, F_SETFL, fcntl(fSocket, F_GETFL) | O_NONBLOCK);
        fReplyPort = ntohs(address.sin_port);
        fWriter.noteReplyPort(fReplyPort);
    }

    bool send(const dawbridge::OscWriter& message)
    {
        const std::vector<unsigned char> bytes = message.bytes();
        sockaddr_in daemon{};
        daemon.sin_family = AF_INET;
        daemon.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        daemon.sin_port = htons(uint16_t(std::lround(fValues[kDaemonPort].load())));
        return fSocket >= 0
            && sendto(fSocket, bytes.data(), bytes.size(), 0, reinterpret_cast<sockaddr*>(&daemon), sizeof daemon)
            == ssize_t(bytes.size());
    }

    void setJobState(JobState state, std::string message = {})
    {
        fJob.state = state;
        if (!message.empty() || state == kSent)
            fJob.message = std::move(message);
        fValues[kState].store(float(state), std::memory_order_relaxed);
    }

    // The range a trigger sends: the marks once both are set, else the Range start/end parameters.
    std::pair<double, double> range() const
    {
        if (fMarked.load(std::memory_order_acquire)) {
            const double in = fMarkIn.load(std::memory_order_relaxed), out = fMarkOut.load(std::memory_order_relaxed);
            return {std::min(in, out), std::max(in, out)};
        }
        return {fValues[kRangeStart].load(), fValues[kRangeEnd].load()};
    }

    void request(uint32_t requests)
    {
        const auto [start, end] = range();
        const int preset = int(std::lround(fValues[kPreset].load()));
        for (const uint32_t which : {kRequestInpaint, kRequestExtend}) {
            if (!(requests & which))
                continue;
            const bool inpaint = which == kRequestInpaint;
            const std::string id = fInstance + "-r" + std::to_string(++fRequestCount);
            fWriter.noteRequest(inpaint ? "inpaint" : "extend", start, end, id, preset);
            dawbridge::OscWriter message(inpaint ? "/bridge/inpaint" : "/bridge/extend");
            message.nil();  // source: the capture names the audio
            if (inpaint)
                message.float64(start).float64(end).string("");  // prompt: the daemon's for this instance and preset
            else
                message.float64(end);  // extend after the range's end
            message.string("capture").string(fInstance).string("reply_port").int32(fReplyPort)
                .string("request_id").string(id);
            fJob = Job{};
            fRateHeld = kIdle;
            fFollowing = false;
            fJob.requestId = id;
            fJob.operation = inpaint ? "inpaint" : "extend";
            fJob.sentAt = std::chrono::steady_clock::now();
            fValues[kProgress].store(0.0f, std::memory_order_relaxed);
            if (send(message))
                setJobState(kSent);
            else
                setJobState(kNoAnswer, "could not send to 127.0.0.1:" + std::to_string(int(fValues[kDaemonPort].load())));
        }
        if (requests & kRequestCancel) {
            fWriter.noteRequest("cancel", start, end, fJob.requestId, preset);
            if (!fJob.jobId.empty())
                sendCancel();
            else if (fJob.state == kSent)  // not accepted yet: it was run to its end (perhaps paid) once accepted
                fJob.cancelWanted = true;
        }
    }

    // A job restored while it ran (see restore): the daemon is asked how it stands every 2 s until it has ended; it
    // answers with the job's state and its end (/bridge/done, /bridge/failed) once there is one. Asking again, not
    // once: the daemon may be down when the project opens, or restart before the job ends.
    void follow()
    {
        if (!fFollowing)
            return;
        if (fJob.state != kWorking) {
            fFollowing = false;
            return;
        }
        const auto now = std::chrono::steady_clock::now();
        if (now - fAskedAt < std::chrono::seconds(2))
            return;
        fAskedAt = now;
        send(dawbridge::OscWriter("/bridge/status").string("job_id").string(fJob.jobId).string("reply_port")
                 .int32(fReplyPort));
    }

    void sendCancel()
    {
        send(dawbridge::OscWriter("/bridge/cancel").string(fJob.jobId).string("reply_port").int32(fReplyPort));
    }

    void receive()
    {
        unsigned char datagram[65536];
        for (;;) {
            const ssize_t size = recv(fSocket, datagram, sizeof datagram, 0);
            if (size < 0)
                return;  // EAGAIN: drained (an ICMP refusal shows up here too)
            std::string address;
            std::vector<dawbridge::OscArgument> args;
            if (dawbridge::oscDecode(datagram, size_t(size), address, args))
                reply(address, args);
        }
    }

    static std::string text(const std::vector<dawbridge::OscArgument>& args, size_t i)
    {
        return i < args.size() && args[i].type == 's' ? args[i].text : std::string();
    }

    // The daemon's replies about this instance's job; everything else is ignored.
    void reply(const std::string& address, const std::vector<dawbridge::OscArgument>& args)
    {
        if (fJob.requestId.empty())
            return;
        if (address == "/bridge/accepted" && text(args, 0) == fJob.requestId) {
            fJob.jobId = text(args, 1);
            setJobState(kWorking);
            if (fJob.cancelWanted && !fJob.jobId.empty())  // Cancel was pressed before the daemon answered
                sendCancel();
        } else if (address == "/bridge/error" && text(args, 1) == fJob.requestId) {
            setJobState(kRefused, text(args, 3));
        } else if (address == "/bridge/error" && fFollowing && text(args, 0) == "/bridge/status") {
            fFollowing = false;  // its journal was moved or deleted: the job will not end
            setJobState(kFailed, "the daemon does not know the job any more: " + text(args, 3));
        } else if (fJob.jobId.empty() || text(args, 0) != fJob.jobId) {
            return;
        } else if (address == "/bridge/state") {
            const std::string state = text(args, 1);
            if (args.size() > 2 && args[2].type != 's' && args[2].number >= 0.0 && args[2].number <= 1.0)
                fValues[kProgress].store(float(args[2].number), std::memory_order_relaxed);  // (NaN is no progress)
            if (state == "failed")
                setJobState(kFailed, text(args, 3));
            else if (state == "cancelled")
                setJobState(kCancelled, text(args, 3));
            else if (fJob.state != kReady && fJob.state != kLoadFailed && state != "delivered")
                setJobState(kWorking, text(args, 3));
        } else if (address == "/bridge/failed") {
            setJobState(kFailed, text(args, 1) + ": " + text(args, 2));
        } else if (address == "/bridge/done") {
            std::vector<std::string> manifests;
            for (size_t i = 1; i < args.size(); ++i)
                if (args[i].type == 's')
                    manifests.push_back(args[i].text);
            load(manifests);
        } else if (address == "/bridge/decided" && args.size() >= 4 && args[2].type == 'i' && args[3].type == 'i') {
            decide(text(args, 1), int(args[2].number), int(args[3].number));
        }
    }

    // The producer chose, kept or discarded this job's variants outside the host. choose/keep n: variant n plays
    // (choose 0: the original) until the Variant parameter next changes; discard, or keep 0 (the original kept: a
    // discard on every DAW side): the original plays and the variants are forgotten. A decision older than (or the
    // same as) the last one applied is a repeat: ignored.
    void decide(const std::string& decision, int choice, int seq)
    {
        if (seq <= fJob.decisionSeq || !applies(decision, choice))
            return;
        fJob.decisionSeq = seq;
        apply(decision, choice);
    }

    static bool discards(const std::string& decision, int choice)
    {
        return decision == "discard" || (decision == "keep" && choice == 0);
    }

    // A discard always applies; a choice only to variants loaded (0 being the original).
    bool applies(const std::string& decision, int choice) const
    {
        if (discards(decision, choice))
            return true;
        return (decision == "choose" || decision == "keep") && (fJob.state == kReady || fJob.state == kChosen)
            && choice >= 0 && choice <= int(fJob.manifests.size());
    }

    void apply(const std::string& decision, int choice)
    {
        fJob.decision = decision;
        fJob.choice = decision == "discard" ? 0 : choice;
        if (discards(decision, choice)) {
            forget(decision == "discard" ? "discarded" : "kept the original");
            return;
        }
        fDecided.store(choice, std::memory_order_release);
        setJobState(kChosen, (decision == "keep" ? "kept " : "chose ")
                                 + (choice ? "variant " + std::to_string(choice) : std::string("the original"))
                                 + " outside the host; the Variant parameter chooses again once it changes");
    }

    // Discarded: run() fades to the input at its next block; the set itself is dropped once nothing reads it.
    void forget(const std::string& how)
    {
        fDecided.store(kForgotten, std::memory_order_release);
        fForgetting = fPlayback.load(std::memory_order_seq_cst) != nullptr;
        fRateHeld = kIdle;
        fJob.manifests.clear();
        fJob.gains.clear();
        fValues[kVariants].store(0.0f, std::memory_order_relaxed);
        setJobState(kDiscarded, how + " outside the host: the original plays, the variants are forgotten");
    }

    // Background loop: a decision's end (the Variant parameter changed), and a discarded set let go of once run() no
    // longer plays from it (its fade to the input is over).
    void followDecision()
    {
        if (fJob.state == kChosen && fDecided.load(std::memory_order_acquire) == kNoDecision) {
            fJob.decision.clear();
            setJobState(kReady, "the Variant parameter chooses again");
        }
        if (fForgetting && fHearingInput.load(std::memory_order_acquire)) {
            Playback* old = fPlayback.exchange(new Playback, std::memory_order_seq_cst);
            fRetired.emplace_back(old, fRunEpoch.load(std::memory_order_seq_cst));
            fForgetting = false;
        }
    }

    // The host's rate against the loaded set's (the host may change it while deactivated, and a VST3 or CLAP host
    // sets the saved state before it says its rate): while they differ the set is silent in run() and the state says
    // why; once they agree again the state is back to what it was.
    void followRate()
    {
        const Playback* set = fPlayback.load(std::memory_order_seq_cst);
        if (set == nullptr || set->variants.empty())
            return;
        const uint32_t host = uint32_t(getSampleRate());
        if (set->sampleRate != host && fRateHeld == kIdle && (fJob.state == kReady || fJob.state == kChosen)) {
            fRateHeld = fJob.state;
            setJobState(kLoadFailed, "the variants are at " + std::to_string(set->sampleRate) + " Hz and the host runs "
                                     "at " + std::to_string(host) + " Hz: they play once it runs at "
                                         + std::to_string(set->sampleRate) + " Hz (resampling is not done yet)");
        } else if (set->sampleRate == host && fRateHeld != kIdle) {
            if (fJob.state == kLoadFailed) {
                setJobState(fRateHeld);
                fJob.message.clear();
            }
            fRateHeld = kIdle;
        }
    }

    // Read every variant off the audio thread, then hand the whole set to run() in one pointer swap. A set that cannot
    // be loaded is still the job's: its manifests stay in the saved state (a drive not mounted today is back tomorrow).
    void load(const std::vector<std::string>& manifests)
    {
        auto* playback = new Playback;
        fJob.manifests = manifests;
        fJob.gains.clear();
        fRateHeld = kIdle;
        for (const std::string& path : manifests) {
            dawbridge::Variant variant;
            std::string why = dawbridge::loadVariant(path, variant);
            if (why.empty() && !playback->variants.empty() && variant.sampleRate != playback->sampleRate)
                why = path + ": audio at " + std::to_string(variant.sampleRate) + " Hz, the job's other variants at "
                    + std::to_string(playback->sampleRate) + " Hz";
            if (!why.empty()) {
                delete playback;
                setJobState(kLoadFailed, why);
                return;
            }
            playback->sampleRate = variant.sampleRate;
            variant.gain = matchingGain(variant);
            playback->variants.push_back(std::move(variant));
        }
        std::stable_sort(playback->variants.begin(), playback->variants.end(),
                         [](const dawbridge::Variant& a, const dawbridge::Variant& b) { return a.number < b.number; });
        for (const dawbridge::Variant& variant : playback->variants)
            fJob.gains.push_back(variant.gain);
        fValues[kVariants].store(float(playback->variants.size()), std::memory_order_relaxed);
        Playback* old = fPlayback.exchange(playback, std::memory_order_seq_cst);
        if (old != nullptr)
            fRetired.emplace_back(old, fRunEpoch.load(std::memory_order_seq_cst));
        fDecided.store(kNoDecision, std::memory_order_release);  // the new set plays as the Variant parameter says
        fForgetting = false;
        fValues[kProgress].store(1.0f, std::memory_order_relaxed);
        setJobState(kReady);
    }

    // The gain that brings the variant's RMS over its span to the original's there (the capture's newest take, over
    // the frames it holds), bounded to +-12 dB as the daemon's own joins are; 1 when the capture holds none of it.
    float matchingGain(const dawbridge::Variant& variant)
    {
        std::vector<float> original;
        std::vector<char> covered;
        fWriter.readBack(variant.timelineFrame, variant.frames, variant.sampleRate, original, covered);
        double wanted = 0.0, have = 0.0;
        for (size_t i = 0; i < covered.size(); ++i)
            if (covered[i])
                for (uint32_t c = 0; c < kChannels; ++c) {
                    const float heard = original[i * kChannels + c];
                    if (!std::isfinite(heard))  // one inf the track played would ask for the +12 dB bound
                        continue;
                    wanted += double(heard) * heard;
                    have += double(variant.stereo[c][i]) * variant.stereo[c][i];
                }
        if (!(wanted >= 1e-12 && have >= 1e-12 && std::isfinite(wanted) && std::isfinite(have)))
            return 1.0f;
        return float(std::clamp(std::sqrt(wanted / have), 0.25, 4.0));
    }

    // A job saved with the project (see setState): its identity back, and its variants loaded again.
    void restore()
    {
        std::string saved;
        {
            const std::lock_guard<std::mutex> lock(fSavedLock);
            saved.swap(fRestore);
        }
        dawbridge::JsonValue job;
        if (saved.empty() || !dawbridge::JsonParser(saved).parse(job) || job.type != dawbridge::JsonValue::Object)
            return;
        const auto text = [&job](const char* key) {
            const dawbridge::JsonValue* value = job.get(key);
            return value && value->type == dawbridge::JsonValue::String ? value->text : std::string();
        };
        restoreNames(job, text("request_id"));
        if (text("request_id").empty())  // the project had no job for this plugin: only its names
            return;
        fJob = Job{};
        fRateHeld = kIdle;
        fFollowing = false;
        fJob.requestId = text("request_id");
        fJob.jobId = text("job_id");
        fJob.operation = text("operation");
        if (const dawbridge::JsonValue* variant = job.get("variant"); variant && variant->type == dawbridge::JsonValue::Number)
            fValues[kVariant].store(withinRange(kVariant, float(variant->number), 0.0f));
        std::vector<std::string> manifests;
        if (const dawbridge::JsonValue* list = job.get("manifests"); list && list->type == dawbridge::JsonValue::Array)
            for (const dawbridge::JsonValue& item : list->items)
                if (item.type == dawbridge::JsonValue::String)
                    manifests.push_back(item.text);
        // the decision that held when the project was saved ("" when none did), and its choice and number
        const dawbridge::JsonValue* held = job.get("decision");
        const dawbridge::JsonValue none;
        const dawbridge::JsonValue& decision = held && held->type == dawbridge::JsonValue::Object ? *held : none;
        const auto number = [&decision](const char* key) { return dawbridge::integerOr(decision.get(key), 0); };
        const dawbridge::JsonValue* kind = decision.get("decision");
        const std::string decided = kind && kind->type == dawbridge::JsonValue::String ? kind->text : std::string();
        fJob.decisionSeq = number("seq");
        if (discards(decided, number("choice"))) {
            apply(decided, number("choice"));
        } else if (manifests.empty() && !fJob.jobId.empty() && text("state") == "working") {
            // saved while the daemon worked on it (the project closed for the night, the daemon down at reopening):
            // its results went to the instance that was, and the daemon tells this one of them when asked
            fFollowing = true;
            fAskedAt = {};
            setJobState(kWorking, "reopened while the job ran: asking the daemon on 127.0.0.1:"
                                      + std::to_string(int(fValues[kDaemonPort].load())) + " how it stands");
        } else if (manifests.empty()) {
            setJobState(kIdle, "restored from the project without results (the job had not delivered when it was saved)");
        } else {
            load(manifests);
            if (applies(decided, number("choice")))
                apply(decided, number("choice"));
        }
    }

    // The names the plugin had in this project (saved "names"; a project saved before they were kept names the
    // instance that made its job in the job's request id, "<instance>-r<n>"), for the daemon (noteEarlierNames).
    void restoreNames(const dawbridge::JsonValue& saved, const std::string& requestId)
    {
        std::vector<std::string> names;
        if (const dawbridge::JsonValue* list = saved.get("names"); list && list->type == dawbridge::JsonValue::Array)
            for (const dawbridge::JsonValue& item : list->items)
                if (item.type == dawbridge::JsonValue::String && !item.text.empty() && item.text != fInstance)
                    names.push_back(item.text);
        if (const size_t at = requestId.rfind("-r");
            names.empty() && at != std::string::npos && requestId.compare(0, at, fInstance) != 0)
            names.push_back(requestId.substr(0, at));
        if (names.size() > 15)
            names.erase(names.begin(), names.end() - 15);
        fEarlier = std::move(names);
        std::string json;
        for (auto name = fEarlier.rbegin(); name != fEarlier.rend(); ++name)
            json += (json.empty() ? "[" : ", ") + jsonString(*name);
        fWriter.noteEarlierNames(json.empty() ? json : json + "]");
    }

    // A replaced set may still be read by the block that loaded it before the swap (it ends by advancing the epoch
    // past the value read after the swap; blocks never overlap), and by the fade from it to the new set that the
    // next block may start: that block says so in fFadingFromSet before it reads a sample, so once a second block
    // has ended the set is free unless that fade still reads it.
    void retire()
    {
        const uint64_t epoch = fRunEpoch.load(std::memory_order_seq_cst);
        const Playback* fading = fFadingFromSet.load(std::memory_order_seq_cst);
        for (size_t i = 0; i < fRetired.size();) {
            if (epoch > fRetired[i].second + 1 && fRetired[i].first != fading) {
                delete fRetired[i].first;
                fRetired.erase(fRetired.begin() + long(i));
            } else {
                ++i;
            }
        }
    }

    // "names": every name the plugin had in this project, oldest first, this instance's last (at most 16).
    std::string namesJson() const
    {
        std::string json = "\"names\": [";
        for (const std::string& name : fEarlier)
            json += jsonString(name) + ", ";
        return json + jsonString(fInstance) + "]";
    }

    std::string jobJson() const
    {
        if (fJob.requestId.empty())
            return {};
        char progress[32];
        std::snprintf(progress, sizeof progress, "%.4f", double(fValues[kProgress].load()));
        std::string manifests = "[", gains = "[";
        for (size_t i = 0; i < fJob.manifests.size(); ++i)
            manifests += (i ? ", " : "") + jsonString(fJob.manifests[i]);
        for (size_t i = 0; i < fJob.gains.size(); ++i) {
            char gain[32];
            std::snprintf(gain, sizeof gain, "%s%.6f", i ? ", " : "", double(fJob.gains[i]));
            gains += gain;
        }
        return "{\"request_id\": " + jsonString(fJob.requestId) + ", \"operation\": " + jsonString(fJob.operation)
            + ", \"job_id\": " + jsonString(fJob.jobId) + ", \"state\": " + jsonString(kJobStateNames[fJob.state])
            + ", \"progress\": " + progress + ", \"message\": " + jsonString(fJob.message)
            + ", \"manifests\": " + manifests + "], \"gains\": " + gains + "], \"variant\": "
            + std::to_string(int(std::lround(fValues[kVariant].load()))) + ", \"decision\": "
            + (fJob.decisionSeq == 0 ? std::string("null")
                                     : "{\"decision\": " + jsonString(fJob.decision) + ", \"choice\": "
                                           + std::to_string(fJob.choice) + ", \"seq\": "
                                           + std::to_string(fJob.decisionSeq) + "}")
            + "}";
    }

    void backgroundLoop()
    {
        for (;;) {
            const bool quitting = fQuit.load(std::memory_order_acquire);
            BlockRecord block;
            while (fRing.pop(block, fInterleaved))
                fWriter.append(block, fInterleaved);
            fWriter.noteTransport(fHostTransport.read());
            fWriter.noteDropped(fDroppedBlocks.load(std::memory_order_relaxed));
            restore();  // before a press the host sent after the state: the press is the newer
            if (const uint32_t requests = fRequests.exchange(0, std::memory_order_acquire)) {
                fWriter.publish();  // everything played before the press is readable when the daemon gets it
                request(requests);
            }
            if (fSocket >= 0)
                receive();
            follow();
            if (fJob.state == kSent && std::chrono::steady_clock::now() - fJob.sentAt > std::chrono::seconds(10))
                setJobState(kNoAnswer, "no answer from the daemon on 127.0.0.1:"
                                        + std::to_string(int(fValues[kDaemonPort].load())));
            followRate();
            followDecision();
            retire();
            const std::string job = jobJson();
            fWriter.noteJob(job);
            {
                const std::lock_guard<std::mutex> lock(fSavedLock);
                fSaved = job.empty() ? "{" + namesJson() + "}" : job.substr(0, job.size() - 1) + ", " + namesJson() + "}";
            }
#ifdef DAW_BRIDGE_RT_CHECK
            fWriter.noteAllocations(gAllocationsInRun.load(std::memory_order_relaxed));
#endif
            fWriter.publish();
            if (quitting)
                return;
            if (fSocket >= 0) {
                pollfd waiting{fSocket, POLLIN, 0};
                poll(&waiting, 1, 20);  // a reply wakes the thread at once; else the capture is drained every 20 ms
            } else {
                std::this_thread::sleep_for(std::chrono::milliseconds(20));
            }
        }
    }

    struct Job {
        std::string requestId, jobId, operation, message;
        std::vector<std::string> manifests;
        std::vector<float> gains;  // each variant's loudness-matching gain, in variant order
        // the last decision applied (/bridge/decided): its kind while it holds ("" once the Variant parameter took
        // over again), the variant it chose, its number (0: none yet)
        std::string decision;
        int choice = 0, decisionSeq = 0;
        JobState state = kIdle;
        bool cancelWanted = false;  // Cancel pressed before the job was accepted: sent once it is
        std::chrono::steady_clock::time_point sentAt;
    };

    const bool fUsesSongPosition;
    const bool fRestoreSetsPresses;  // VST3 and CLAP: only DPF's restore brings saved values (see fPressGate)
    const std::string fInstance;
    CaptureRing fRing;
    CaptureWriter fWriter;
    std::atomic<float> fValues[kParameterCount];  // every parameter's value, from kParameterSpecs' defaults
    std::atomic<uint32_t> fRequests{0};
    // The presses (kPresses) that may be pressed (armed), and those a restore has yet to set (pending); see kPending.
    // A host saves every parameter with the project, a press too: Inpaint clicked on in a generic UI (a toggle there)
    // and left on was saved on, and each reopening of the project sent the daemon a new job (a paid one on MusicGPT)
    // as the host restored it. Now a press is armed when the host sets it off (lets go of it), or when run() finds it
    // off after 50 ms of audio with no restore begun, and only once a restore in VST3 or CLAP has set it: DPF sets
    // the state, then each parameter, in one call on the host's thread while run() may go on (its VST3 setState
    // reads the saved stream piece by piece), and a run() in between armed Inpaint before the saved on came, which
    // then counted. An LV2 instance begins with nothing armed: its host may run a block with the saved control value
    // before it restores the state (DPF's LV2 restore sets no parameter: the host's ports bring them to run()). A
    // VST3 or CLAP one begins armed: DPF gives it saved values only through a restore, and a script's first block
    // (pedalboard: load, set Inpaint, process) is a press.
    std::atomic<uint64_t> fPressGate{0};
    uint32_t fRestoresSeen = 0, fQuietFrames = 0;  // run()'s: restores it has seen, frames run since the last
    // marks: presses waiting for run() to read the position, the marked times in seconds (-1: none), whether they
    // are the range
    std::atomic<uint32_t> fMarks{0};
    std::atomic<double> fMarkIn{-1.0}, fMarkOut{-1.0};
    static_assert(std::atomic<double>::is_always_lock_free, "the audio thread sets the marks");
    std::atomic<bool> fMarked{false};
    std::atomic<uint64_t> fDroppedBlocks{0};
    TransportMailbox fHostTransport;  // run() -> the capture index
    HostTransport fLastTransport;     // what run() last wrote there (run() only)
    struct Rolled {
        BlockRecord block;
        bool playing, pushed;  // the host rolled; the block went into the capture
    } fLastRolled{};  // run()'s previous block
    std::atomic<bool> fQuit{false};
    // playback: the set run() reads, and run()'s block counter that says when a replaced set is no longer read
    std::atomic<Playback*> fPlayback{nullptr};
    std::atomic<uint64_t> fRunEpoch{0};
    // a decision's override of the Variant parameter (kNoDecision, kForgotten, or the variant to play), and whether
    // run()'s last block read no variant (set by run(); a discarded set is let go of then)
    std::atomic<int> fDecided{kNoDecision};
    std::atomic<bool> fHearingInput{true};
    // run()'s own: the source heard (see sourceAt) and its set, the one faded from and its set, frames of that fade
    // left; and the set faded from while a fade reads it, for retire()
    int fHeard = 0, fFadingFrom = 0;
    const Playback* fHeardSet = nullptr;
    const Playback* fFadingSet = nullptr;
    const Playback* fToldFading = nullptr;  // what fFadingFromSet holds
    uint32_t fFadeLeft = 0;
    int64_t fFadeOffset = 0;  // the source faded from plays at timeline frame t + this (a jump: where it was heading)
    bool fFresh = true;  // no block since the host activated the plugin (set by activate(), read by run())
    std::atomic<const Playback*> fFadingFromSet{nullptr};
#ifdef DAW_BRIDGE_RT_CHECK
    bool fAllocateInRun = false;
#endif
    // the background thread's own
    int fSocket = -1;
    int fReplyPort = 0;
    uint32_t fRequestCount = 0;
    Job fJob;
    bool fForgetting = false;  // a discarded set waits for run() to stop reading it
    bool fFollowing = false;   // a job restored while it ran: the daemon is asked how it stands (see follow)
    std::chrono::steady_clock::time_point fAskedAt;
    JobState fRateHeld = kIdle;  // the state the loaded set's rate, not the host's, stands in for (kIdle: none)
    std::vector<std::string> fEarlier;  // the names the plugin had in this project before, oldest first
    std::vector<std::pair<Playback*, uint64_t>> fRetired;
    std::vector<float> fInterleaved;  // a captured block on its way from the ring to the WAV
    // the project's state: what getState returns, and a state the host set that the background thread has to restore
    mutable std::mutex fSavedLock;
    std::string fSaved, fRestore;
    std::thread fThread;

    DISTRHO_DECLARE_NON_COPYABLE_WITH_LEAK_DETECTOR(DawBridgePlugin)
};

Plugin* createPlugin()
{
    return new DawBridgePlugin();
}

END_NAMESPACE_DISTRHO
