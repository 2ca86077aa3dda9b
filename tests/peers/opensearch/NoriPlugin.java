// A minimal stand-in for OpenSearch's analysis-nori plugin (its jar is not on Maven Central):
// registers Lucene's KoreanAnalyzer as the `nori` analyzer, which is all the AIRIS
// elasticsearch exporter's index templates use. Compiled by tests/peers/opensearch.sh.
package org.airis.nori;

import java.util.Map;
import org.apache.lucene.analysis.Analyzer;
import org.apache.lucene.analysis.ko.KoreanAnalyzer;
import org.opensearch.common.settings.Settings;
import org.opensearch.index.IndexSettings;
import org.opensearch.index.analysis.AbstractIndexAnalyzerProvider;
import org.opensearch.index.analysis.AnalyzerProvider;
import org.opensearch.indices.analysis.AnalysisModule.AnalysisProvider;
import org.opensearch.plugins.AnalysisPlugin;
import org.opensearch.plugins.Plugin;

public class NoriPlugin extends Plugin implements AnalysisPlugin {
    @Override
    public Map<String, AnalysisProvider<AnalyzerProvider<? extends Analyzer>>> getAnalyzers() {
        return Map.of("nori", (indexSettings, env, name, settings) -> new Provider(indexSettings, name, settings));
    }

    static final class Provider extends AbstractIndexAnalyzerProvider<KoreanAnalyzer> {
        private final KoreanAnalyzer analyzer = new KoreanAnalyzer();

        Provider(IndexSettings indexSettings, String name, Settings settings) {
            super(indexSettings, name, settings);
        }

        @Override
        public KoreanAnalyzer get() {
            return analyzer;
        }
    }
}
