// A DPF pass-through with nothing else: what any DPF plugin costs the host, to compare the daw-bridge plugin against.
#include "DistrhoPlugin.hpp"

#include <cstring>

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

    void run(const float** inputs, float** outputs, uint32_t frames) override
    {
        for (uint32_t c = 0; c < DISTRHO_PLUGIN_NUM_OUTPUTS; ++c)
            if (outputs[c] != inputs[c])
                std::memmove(outputs[c], inputs[c], sizeof(float) * frames);
    }
};

Plugin* createPlugin()
{
    return new EmptyPlugin();
}

END_NAMESPACE_DISTRHO
