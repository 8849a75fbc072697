// The CPU baseline for bench/plugin_cpu.py: the daw-bridge plugin's shape (stereo, transport) doing nothing else.
#ifndef DISTRHO_PLUGIN_INFO_H_INCLUDED
#define DISTRHO_PLUGIN_INFO_H_INCLUDED

#define DISTRHO_PLUGIN_BRAND   "daw-bridge"
#ifdef DAW_BRIDGE_COPY_FLOOR
#define DISTRHO_PLUGIN_NAME    "daw-bridge copy floor"
#define DISTRHO_PLUGIN_URI     "urn:daw-bridge:copy-floor"
#define DISTRHO_PLUGIN_CLAP_ID "org.daw-bridge.copy-floor"
#else
#define DISTRHO_PLUGIN_NAME    "daw-bridge empty"
#define DISTRHO_PLUGIN_URI     "urn:daw-bridge:empty"
#define DISTRHO_PLUGIN_CLAP_ID "org.daw-bridge.empty"
#endif

#define DISTRHO_PLUGIN_HAS_UI       0
#define DISTRHO_PLUGIN_IS_RT_SAFE   1
#define DISTRHO_PLUGIN_NUM_INPUTS   2
#define DISTRHO_PLUGIN_NUM_OUTPUTS  2
#define DISTRHO_PLUGIN_WANT_TIMEPOS 1

#define DISTRHO_PLUGIN_LV2_CATEGORY  "lv2:UtilityPlugin"
#define DISTRHO_PLUGIN_CLAP_FEATURES "audio-effect", "utility", "stereo"

#endif
