// A DPF pass-through with nothing else: what any DPF plugin costs the host, to compare the daw-bridge plugin against.
// Built with COPY_FLOOR=1 (make COPY_FLOOR=1), it also makes the copies that capturing and playing a variant cannot
// avoid, and nothing else: the floor under the daw-bridge plugin's figures (see bench/plugin_cpu.py).
#include "DistrhoPlugin.hpp"

#include <cstring>
#ifdef DAW_BRIDGE_COPY_FLOOR
#include <algorithm>
#include <cstdlib>
#include <vector>
#endif

START_NAMESPACE_DISTRHO

class EmptyPlugin : public Plugin {
public:
    EmptyPlugin() : Plugin(0, 0, 0) {}

protected:
    const char* getLabel() const override { return "DawBridgeEmpty"; }
    const char* getMaker() const override { return "daw-bridge"; }
    const char* getLicense() const override { return "MIT"; }
    uint32_t getVersion() const override { return d_version(0, 1, 0); }
    int64_t getUniqueId() const override { return d_cconst('d', 'w', 'b', 'e'); }
    void initParameter(uint32_t, Parameter&) override {}

#ifndef DAW_BRIDGE_COPY_FLOOR
    void run(const float** inputs, float** outputs, uint32_t frames) override
    {
        for (uint32_t c = 0; c < DISTRHO_PLUGIN_NUM_OUTPUTS; ++c)
            if (outputs[c] != inputs[c])
                std::memmove(outputs[c], inputs[c], sizeof(float) * frames);
    }
#else
    // While the transport rolls: the input once more into a planar ring of the capture's size (2^20 frames a
    // channel, cold in the cache like the plugin's), and with DAW_BRIDGE_COPY_FLOOR=playing the output read from a
    // 10 s planar buffer (as a played variant is) instead of the input. Stopped: the pass-through alone.
    void run(const float** inputs, float** outputs, uint32_t frames) override
    {
        const bool rolling = getTimePosition().playing;
        for (uint32_t c = 0; c < DISTRHO_PLUGIN_NUM_OUTPUTS; ++c) {
            const float* from = inputs[c];
            if (rolling) {
                float* ring = fRing.data() + size_t(c) * kRingFrames;
                const uint32_t first = std::min(frames, kRingFrames - fRingAt);
                std::memcpy(ring + fRingAt, inputs[c], sizeof(float) * first);
                std::memcpy(ring, inputs[c] + first, sizeof(float) * (frames - first));
                if (fPlaying && fPlayedAt + frames <= kVariantFrames)
                    from = fVariant.data() + size_t(c) * kVariantFrames + fPlayedAt;
            }
            if (outputs[c] != from)
                std::memmove(outputs[c], from, sizeof(float) * frames);
        }
        if (rolling) {
            fRingAt = (fRingAt + frames) & (kRingFrames - 1);
            fPlayedAt = fPlayedAt + frames <= kVariantFrames ? fPlayedAt + frames : 0;
        }
    }

private:
    static constexpr uint32_t kRingFrames = 1u << 20, kVariantFrames = 10 * 48000;
    static bool playsVariant()
    {
        const char* mode = std::getenv("DAW_BRIDGE_COPY_FLOOR");
        return mode != nullptr && std::strcmp(mode, "playing") == 0;
    }

    const bool fPlaying = playsVariant();
    std::vector<float> fRing = std::vector<float>(size_t(kRingFrames) * DISTRHO_PLUGIN_NUM_OUTPUTS);
    std::vector<float> fVariant = std::vector<float>(size_t(kVariantFrames) * DISTRHO_PLUGIN_NUM_OUTPUTS, 0.5f);
    uint32_t fRingAt = 0, fPlayedAt = 0;
#endif
};

Plugin* createPlugin()
{
    return new EmptyPlugin();
}

END_NAMESPACE_DISTRHO
