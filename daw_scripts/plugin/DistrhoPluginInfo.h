// What DPF needs to know at compile time about the daw-bridge plugin (one source: LV2, VST3, CLAP).
#ifndef DISTRHO_PLUGIN_INFO_H_INCLUDED
#define DISTRHO_PLUGIN_INFO_H_INCLUDED

#define DISTRHO_PLUGIN_BRAND   "daw-bridge"
#define DISTRHO_PLUGIN_NAME    "daw-bridge"
#define DISTRHO_PLUGIN_URI     "urn:daw-bridge:plugin"
#define DISTRHO_PLUGIN_CLAP_ID "org.daw-bridge.plugin"

#define DISTRHO_PLUGIN_HAS_UI       0
#define DISTRHO_PLUGIN_IS_RT_SAFE   1
#define DISTRHO_PLUGIN_NUM_INPUTS   2
#define DISTRHO_PLUGIN_NUM_OUTPUTS  2
#define DISTRHO_PLUGIN_WANT_TIMEPOS 1
// the job, its result files and the chosen variant are saved with the host's project (one state key, "job")
#define DISTRHO_PLUGIN_WANT_STATE      1
#define DISTRHO_PLUGIN_WANT_FULL_STATE 1

#define DISTRHO_PLUGIN_LV2_CATEGORY   "lv2:UtilityPlugin"
#define DISTRHO_PLUGIN_VST3_CATEGORIES "Fx|Tools"
#define DISTRHO_PLUGIN_CLAP_FEATURES   "audio-effect", "utility", "stereo"

#endif
