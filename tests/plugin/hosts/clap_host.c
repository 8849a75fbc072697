/* A minimal CLAP host for the plugin tests and bench: it loads a .clap, activates it, and processes a song through
 * it with a transport, as a DAW would.
 *
 *   clap_host PLUGIN.clap SONG.f32 OUT.f32 RATE BLOCK BPM STEP...
 *
 * SONG.f32 is raw interleaved stereo float32 indexed by timeline frame: what plays at song position F is frame F
 * of the file (silence before its start, as in a pre-roll, and past its end). Every processed block's output is appended to OUT.f32 (same layout). Steps:
 *   play:FRAME:COUNT  roll from song position FRAME for COUNT frames, in blocks of BLOCK (the last may be shorter)
 *   stop:FRAME:COUNT  the same frames with the transport stopped at FRAME (the input still sounds, as a live input)
 *   set:NAME:VALUE    send a parameter value event with the next block (NAME: the parameter's name, e.g. Variant)
 *   wait:NAME:VALUE   on the main thread, wait (up to 60 s) until parameter NAME reads VALUE or more; exit 3 if not
 *   sleep:MS          pause
 *   tempo:FRAME:BPM   from song position FRAME on, the tempo is BPM (one change: the BPM argument holds before it)
 *   rate:RATE         deactivate the plugin and activate it again at RATE (the project's rate changed); song
 *                     positions and the song's frames count at the new rate from there on
 *   save:PATH         the plugin's state (what a DAW keeps in its project) into the file PATH
 *   load:PATH         the plugin's state from the file PATH (the project reopened: start a new host with this)
 *   slowload:PATH:COUNT  the same, as a host loads a project from a slow disk while the audio goes on: the load
 *                     runs on another thread (the host's main thread), each of its reads gets the file up to its
 *                     next NUL byte (one of the strings DPF saves; DPF 1.6 takes a string split across two reads for
 *                     two) and waits while this thread (the audio thread) processes COUNT frames, stopped at 0
 * The transport carries the song position in beats and seconds, the tempo and 4/4; the process call's steady_time
 * is the host's own frame counter, which never jumps back (it starts at 1000, so it equals no song position here).
 * stdout: "latency N", then per play/stop step "step I blocks N median_ns T": the median time of its process() calls
 * (monotonic clock around each call; the median leaves out the calls the scheduler interrupted).
 */
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clap/entry.h"
#include "clap/ext/latency.h"
#include "clap/ext/params.h"
#include "clap/ext/state.h"
#include "clap/plugin-factory.h"

#define CHANNELS 2

static const void* host_extension(const clap_host_t* host, const char* id) { (void)host; (void)id; return NULL; }
static void host_nothing(const clap_host_t* host) { (void)host; }
static const clap_host_t host = {CLAP_VERSION, NULL, "daw-bridge test host", "daw-bridge", "", "1.0",
                                 host_extension, host_nothing, host_nothing, host_nothing};

/* Parameter events for the next block: at most a few per block. */
static clap_event_param_value_t pending[16];
static uint32_t pending_count;
static uint32_t events_size(const clap_input_events_t* list) { (void)list; return pending_count; }
static const clap_event_header_t* events_get(const clap_input_events_t* list, uint32_t i)
{
    (void)list;
    return &pending[i].header;
}
static bool events_push(const clap_output_events_t* list, const clap_event_header_t* event)
{
    (void)list; (void)event;
    return true;
}
static const clap_input_events_t in_events = {NULL, events_size, events_get};
static const clap_output_events_t out_events = {NULL, events_push};

static int64_t write_file(const clap_ostream_t* stream, const void* buffer, uint64_t size)
{
    return fwrite(buffer, 1, (size_t)size, stream->ctx) == size ? (int64_t)size : -1;
}
static int64_t read_file(const clap_istream_t* stream, void* buffer, uint64_t size)
{
    const size_t got = fread(buffer, 1, (size_t)size, stream->ctx);
    return got == 0 && ferror((FILE*)stream->ctx) ? -1 : (int64_t)got;
}

/* slowload: the loading thread's reads and the audio thread take turns (see the step). */
typedef struct {
    FILE* file;
    pthread_mutex_t lock;
    pthread_cond_t turn;
    bool audio_turn, done, loaded;
    const clap_plugin_t* plugin;
    const clap_plugin_state_t* state;
} slow_load_t;

static int64_t read_slowly(const clap_istream_t* stream, void* buffer, uint64_t size)
{
    slow_load_t* load = stream->ctx;
    size_t got = 0;
    for (int c = 0; got < size && (got == 0 || ((char*)buffer)[got - 1] != '\0') && (c = fgetc(load->file)) != EOF;)
        ((char*)buffer)[got++] = (char)c;
    pthread_mutex_lock(&load->lock);
    load->audio_turn = true;
    pthread_cond_broadcast(&load->turn);
    while (load->audio_turn)
        pthread_cond_wait(&load->turn, &load->lock);
    pthread_mutex_unlock(&load->lock);
    return got == 0 && ferror(load->file) ? -1 : (int64_t)got;
}

static void* load_slowly(void* arg)
{
    slow_load_t* load = arg;
    clap_istream_t from = {load, read_slowly};
    const bool loaded = load->state->load(load->plugin, &from);
    pthread_mutex_lock(&load->lock);
    load->loaded = loaded;
    load->done = true;
    pthread_cond_broadcast(&load->turn);
    pthread_mutex_unlock(&load->lock);
    return NULL;
}

static void fail(const char* why, const char* what)
{
    fprintf(stderr, "clap_host: %s: %s\n", why, what);
    exit(2);
}

/* The CLAP id of the parameter named in a set/wait step ("set:Variant:1"), and the step's value. */
static clap_id parameter(const clap_plugin_t* plugin, const clap_plugin_params_t* params, const char* step,
                         double* value)
{
    const char* name = strchr(step, ':') + 1;
    const char* last = strrchr(step, ':');
    char* end;
    *value = strtod(last + 1, &end);
    if (last == name - 1 || *end != '\0')
        fail("expected NAME:VALUE in", step);
    for (uint32_t i = 0; params && i < params->count(plugin); ++i) {
        clap_param_info_t info;
        if (params->get_info(plugin, i, &info) && strlen(info.name) == (size_t)(last - name)
            && strncmp(info.name, name, (size_t)(last - name)) == 0)
            return info.id;
    }
    fail("no such parameter", step);
    return CLAP_INVALID_ID;
}

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static int by_value(const void* a, const void* b)
{
    const double x = *(const double*)a, y = *(const double*)b;
    return (x > y) - (x < y);
}

/* What the play/stop steps process with. */
typedef struct {
    const clap_plugin_t* plugin;
    clap_process_t* process;
    clap_event_transport_t* transport;
    float **inputs, **outputs, *interleaved;
    const float* song;
    long songFrames;
    FILE* out;
    uint32_t block;
    double rate, bpm, changeBpm;
    long long changeAt;
} host_run_t;

/* COUNT frames from song position FRAME (rolling or stopped there), in blocks; each block's time into took.
 * Returns the number of blocks. */
static long long process_frames(host_run_t* run, bool playing, long long frame, long long count, double* took,
                                const char* step)
{
    clap_process_t* const process = run->process;
    clap_event_transport_t* const transport = run->transport;
    const double rate = run->rate, bpm = run->bpm, changeBpm = run->changeBpm;
    const long long changeAt = run->changeAt, songFrames = run->songFrames;
    const uint32_t block = run->block;
    float **inputs = run->inputs, **outputs = run->outputs, *interleaved = run->interleaved;
    const float* song = run->song;
    long long blocks = 0;
    for (long long done = 0; done < count; done += process->frames_count, ++blocks) {
        const long long at = frame + done, position = playing ? at : frame;
        process->frames_count = (uint32_t)(count - done < block ? count - done : block);
        for (uint32_t k = 0; k < process->frames_count; ++k)
            for (int c = 0; c < CHANNELS; ++c)
                inputs[c][k] = at + k >= 0 && at + k < songFrames ? song[(at + k) * CHANNELS + c] : 0.0f;
        const double beats = (position < changeAt ? position * bpm
                              : changeAt * bpm + (position - changeAt) * changeBpm) / 60.0 / rate;
        transport->tempo = position < changeAt ? bpm : changeBpm;
        transport->flags = CLAP_TRANSPORT_HAS_TEMPO | CLAP_TRANSPORT_HAS_BEATS_TIMELINE
            | CLAP_TRANSPORT_HAS_SECONDS_TIMELINE | CLAP_TRANSPORT_HAS_TIME_SIGNATURE
            | (playing ? CLAP_TRANSPORT_IS_PLAYING : 0);
        transport->song_pos_beats = llround(beats * CLAP_BEATTIME_FACTOR);
        transport->song_pos_seconds = llround(position / rate * CLAP_SECTIME_FACTOR);
        transport->bar_number = (int32_t)(beats / 4);
        transport->bar_start = llround(transport->bar_number * 4.0 * CLAP_BEATTIME_FACTOR);
        const double before = now_ns();
        if (run->plugin->process(run->plugin, process) == CLAP_PROCESS_ERROR)
            fail("process failed at", step);
        took[blocks] = now_ns() - before;
        pending_count = 0;
        process->steady_time += process->frames_count;
        for (uint32_t k = 0; k < process->frames_count; ++k)
            for (int c = 0; c < CHANNELS; ++c)
                interleaved[k * CHANNELS + c] = outputs[c][k];
        fwrite(interleaved, sizeof(float) * CHANNELS, process->frames_count, run->out);
    }
    return blocks;
}

int main(int argc, char** argv)
{
    if (argc < 7)
        fail("usage", "clap_host PLUGIN.clap SONG.f32 OUT.f32 RATE BLOCK BPM STEP...");
    double rate = atof(argv[4]);
    const double bpm = atof(argv[6]);
    double changeBpm = bpm;
    long long changeAt = 0;  /* the song's tempo: bpm before changeAt, changeBpm from there on */
    const uint32_t block = (uint32_t)atoi(argv[5]);

    FILE* songFile = fopen(argv[2], "rb");
    if (!songFile)
        fail("cannot read", argv[2]);
    fseek(songFile, 0, SEEK_END);
    const long songFrames = ftell(songFile) / (long)(sizeof(float) * CHANNELS);
    float* song = malloc(sizeof(float) * CHANNELS * (size_t)(songFrames + 1));
    fseek(songFile, 0, SEEK_SET);
    if (fread(song, sizeof(float) * CHANNELS, (size_t)songFrames, songFile) != (size_t)songFrames)
        fail("cannot read", argv[2]);
    fclose(songFile);
    FILE* out = fopen(argv[3], "wb");
    if (!out)
        fail("cannot write", argv[3]);

    void* library = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    const clap_plugin_entry_t* entry = library ? dlsym(library, "clap_entry") : NULL;
    if (!entry || !entry->init(argv[1]))
        fail("not a CLAP plugin", argv[1]);
    const clap_plugin_factory_t* factory = entry->get_factory(CLAP_PLUGIN_FACTORY_ID);
    const clap_plugin_descriptor_t* descriptor = factory->get_plugin_descriptor(factory, 0);
    const clap_plugin_t* plugin = factory->create_plugin(factory, &host, descriptor->id);
    if (!plugin || !plugin->init(plugin) || !plugin->activate(plugin, rate, 1, block)
        || !plugin->start_processing(plugin))
        fail("the plugin did not start", descriptor->id);
    const clap_plugin_latency_t* latency = plugin->get_extension(plugin, CLAP_EXT_LATENCY);
    const clap_plugin_params_t* params = plugin->get_extension(plugin, CLAP_EXT_PARAMS);
    printf("latency %u\n", latency ? latency->get(plugin) : 0u);

    float *inputs[CHANNELS], *outputs[CHANNELS], *interleaved = malloc(sizeof(float) * CHANNELS * block);
    for (int c = 0; c < CHANNELS; ++c) {
        inputs[c] = malloc(sizeof(float) * block);
        outputs[c] = malloc(sizeof(float) * block);
    }
    clap_audio_buffer_t input = {inputs, NULL, CHANNELS, 0, 0}, output = {outputs, NULL, CHANNELS, 0, 0};
    clap_event_transport_t transport = {
        .header = {sizeof transport, 0, CLAP_CORE_EVENT_SPACE_ID, CLAP_EVENT_TRANSPORT, 0},
        .tsig_num = 4, .tsig_denom = 4};
    clap_process_t process = {1000, 0, &transport, &input, &output, 1, 1, &in_events, &out_events};

    host_run_t run = {plugin, &process, &transport, inputs, outputs, interleaved, song, songFrames, out, block, rate,
                      bpm, changeBpm, changeAt};
    for (int i = 7; i < argc; ++i) {
        long long frame = 0, count = 0;
        char path[4096];
        run.rate = rate, run.changeBpm = changeBpm, run.changeAt = changeAt;
        double value = 0;
        if (strncmp(argv[i], "set:", 4) == 0) {
            const clap_id id = parameter(plugin, params, argv[i], &value);
            if (pending_count == sizeof pending / sizeof pending[0])
                fail("too many parameter events before a block", argv[i]);
            pending[pending_count++] = (clap_event_param_value_t){
                {sizeof(clap_event_param_value_t), 0, CLAP_CORE_EVENT_SPACE_ID, CLAP_EVENT_PARAM_VALUE, 0}, id, NULL,
                -1, -1, -1, -1, value};
        } else if (strncmp(argv[i], "wait:", 5) == 0) {
            const clap_id id = parameter(plugin, params, argv[i], &value);
            double now = 0;
            for (int tries = 0; tries < 6000 && params->get_value(plugin, id, &now) && now < value; ++tries)
                nanosleep(&(struct timespec){0, 10000000}, NULL);
            if (now < value) {
                fprintf(stderr, "clap_host: %s: the parameter reads %g\n", argv[i], now);
                return 3;
            }
        } else if (sscanf(argv[i], "tempo:%lld:%lf", &changeAt, &changeBpm) == 2) {
        } else if (sscanf(argv[i], "rate:%lf", &rate) == 1) {
            plugin->stop_processing(plugin);
            plugin->deactivate(plugin);
            if (!plugin->activate(plugin, rate, 1, block) || !plugin->start_processing(plugin))
                fail("the plugin did not start again at", argv[i]);
        } else if (strncmp(argv[i], "save:", 5) == 0 || strncmp(argv[i], "load:", 5) == 0) {
            const clap_plugin_state_t* state = plugin->get_extension(plugin, CLAP_EXT_STATE);
            const bool saving = argv[i][0] == 's';
            FILE* file = fopen(argv[i] + 5, saving ? "wb" : "rb");
            clap_ostream_t to = {file, write_file};
            clap_istream_t from = {file, read_file};
            if (!file || !state || !(saving ? state->save(plugin, &to) : state->load(plugin, &from)))
                fail("could not do", argv[i]);
            fclose(file);
        } else if (sscanf(argv[i], "slowload:%4095[^:]:%lld", path, &count) == 2) {
            slow_load_t load = {fopen(path, "rb"), PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
                                false, false, false, plugin, plugin->get_extension(plugin, CLAP_EXT_STATE)};
            pthread_t loader;
            if (!load.file || !load.state || pthread_create(&loader, NULL, load_slowly, &load) != 0)
                fail("could not do", argv[i]);
            double* took = malloc(sizeof(double) * (size_t)(count / block + 1));
            pthread_mutex_lock(&load.lock);
            while (!load.done) {
                if (load.audio_turn) {
                    pthread_mutex_unlock(&load.lock);
                    process_frames(&run, false, 0, count, took, argv[i]);
                    pthread_mutex_lock(&load.lock);
                    load.audio_turn = false;
                    pthread_cond_broadcast(&load.turn);
                } else {
                    pthread_cond_wait(&load.turn, &load.lock);
                }
            }
            pthread_mutex_unlock(&load.lock);
            pthread_join(loader, NULL);
            free(took);
            fclose(load.file);
            if (!load.loaded)
                fail("could not do", argv[i]);
        } else if (sscanf(argv[i], "sleep:%lld", &count) == 1) {
            nanosleep(&(struct timespec){count / 1000, (count % 1000) * 1000000}, NULL);
        } else if (sscanf(argv[i], "play:%lld:%lld", &frame, &count) == 2
                   || sscanf(argv[i], "stop:%lld:%lld", &frame, &count) == 2) {
            const bool playing = argv[i][1] == 'l';
            double* took = malloc(sizeof(double) * (size_t)(count / block + 1));
            const long long blocks = process_frames(&run, playing, frame, count, took, argv[i]);
            qsort(took, (size_t)blocks, sizeof(double), by_value);
            printf("step %d blocks %lld median_ns %.0f\n", i - 7, blocks, blocks ? took[blocks / 2] : 0.0);
            free(took);
        } else {
            fail("unknown step", argv[i]);
        }
    }
    plugin->stop_processing(plugin);
    plugin->deactivate(plugin);
    plugin->destroy(plugin);
    entry->deinit();
    fclose(out);
    return 0;
}
